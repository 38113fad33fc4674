/**
 * Next's ETag hash (its own `generateETag`, fnv1a over the HTML, run on every cached page it sends) in fresh
 * processes: alone, after the built package's Redis backend has connected and read (what a `next start` with
 * cachekit-next does before its first response), and after a module defines `class X extends String` (what ioredis
 * 6's RESP3 decoder did: V8 then slows every charCodeAt loop in the process; test/backends/redis-client-footprint.test.ts
 * keeps such modules out). Median of 5 processes each.
 *
 *   npm run build && node bench/run.mjs string-protector      (BENCH_DIST=<other checkout>/dist: that build's backend)
 */
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { startRedis } from '../test/support/servers.js';
import { loadAverage, loadLine, machineLine, makePage, markdownTable, median } from './support.js';

const root = process.cwd(); // bench/run.mjs runs from the repository root
const require = createRequire(path.join(root, 'package.json'));
const etagModule = require.resolve('next/dist/server/lib/etag.js');
const PROCESSES = 5;

const WORKER = `
const [etagFile, dist, redisUrl, mode, html] = process.argv.slice(1);
const { generateETag } = require(etagFile);
const { performance } = require('node:perf_hooks');
(async () => {
  if (mode === 'redis backend') {
    const { RedisBackend } = require(dist + '/index.cjs');
    const backend = new RedisBackend({ url: redisUrl });
    await backend.set('etag-bench', Buffer.from(html));
    await backend.get('etag-bench');
    await backend.close();
  }
  if (mode === 'a String subclass defined') {
    class VerbatimString extends String {}
    globalThis.keep = VerbatimString;
  }
  for (let i = 0; i < 300; i++) generateETag(html);
  const t = performance.now();
  for (let i = 0; i < 2000; i++) generateETag(html);
  console.log(((performance.now() - t) / 2000) * 1000);
})();
`;

const html = makePage(28 * 1024).html;
const redis = await startRedis();
const modes = ['alone', 'redis backend', 'a String subclass defined'];
const results = new Map<string, number[]>(modes.map((m) => [m, []]));
const loads: number[] = [];
for (let round = 0; round < PROCESSES; round++) {
  for (const mode of modes) {
    loads.push(loadAverage());
    const out = execFileSync(process.execPath, ['-e', WORKER, etagModule, process.env.BENCH_DIST ?? path.join(root, 'dist'), redis.url, mode, html], {
      encoding: 'utf8',
    });
    results.get(mode)!.push(Number(out.trim()));
  }
}
await redis.stop();
const alone = median(results.get('alone')!);
console.log(`\n### Next's generateETag of a ${(html.length / 1024).toFixed(0)} K-character page (median of ${PROCESSES} processes)\n`);
console.log(
  markdownTable(
    ['process', 'µs per ETag', 'vs alone'],
    modes.map((m) => [m, median(results.get(m)!).toFixed(1), `${(median(results.get(m)!) / alone).toFixed(2)}x`]),
  ),
);
console.log(`\n${machineLine()}; ${loadLine(loads)}`);
