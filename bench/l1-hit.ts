/**
 * The L1 hit of the *built* package (dist/, what Next loads), in fresh processes: a handler `get` of a 20 KB page on
 * one handler and on a new handler per get (Next constructs one per request), a `'use cache'` get, and a `cache(fn)`
 * call. Each figure is the median of 7 timed loops in one process; processes alternate between this tree's build and
 * an optional baseline build (another checkout's dist/) in both orders, so neither gets the quieter slot.
 *
 *   npm run build && node bench/run.mjs l1-hit
 *   BENCH_BASELINE_DIST=/path/to/other/checkout/dist node bench/run.mjs l1-hit
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startRedis } from '../test/support/servers.js';
import { loadAverage, loadLine, machineLine, markdownTable, median } from './support.js';

const root = process.cwd(); // bench/run.mjs runs from the repository root
const ROUNDS = 3;

// Runs in a child process against one dist/ directory; prints one JSON line of ns per operation.
const WORKER = `
const [dist, redisUrl] = process.argv.slice(2);
const { performance } = await import('node:perf_hooks');
const lib = await import(dist + '/index.js');
const { createCacheHandler } = await import(dist + '/handler.js');
const useCache = await import(dist + '/use-cache.js').catch(() => null);
// mergeRequests off: the handler's own cost, not the event-loop turn it waits by default (older builds ignore it).
const options = { backend: new lib.RedisBackend({ url: redisUrl }), deploymentId: 'l1', namespace: 'l1-' + process.pid, mergeRequests: false };
const Handler = createCacheHandler(options);
const handler = new Handler({});
const html = '<main>' + 'Zürich café 東京 and the quick brown fox. '.repeat(480) + '</main>';
await handler.set('/hot', { kind: 'APP_PAGE', html, rscData: Buffer.alloc(4096, 1), headers: { 'x-next-cache-tags': '_N_T_/layout,posts' }, status: 200 },
  { cacheControl: { revalidate: 3600, expire: 86400 }, isRoutePPREnabled: false, isFallback: false });
const ctx = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false };
const uc = useCache?.createUseCacheHandler?.(options);
const stream = (text) => new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode(text)); c.close(); } });
if (uc) await uc.set('uc-hot', Promise.resolve({ value: stream(html.slice(0, 4096)), tags: ['posts'], stale: 300, timestamp: Date.now(), expire: 86400, revalidate: 3600 }));
const loader = lib.cache(async (id) => ({ id, items: new Map([[1, 'one']]) }), { backend: options.backend, name: 'l1-bench-' + process.pid });
await loader(1);
const ops = {
  handlerGet: async () => { if (!(await handler.get('/hot', ctx))) throw new Error('miss'); },
  newHandlerGet: async () => { if (!(await new Handler({}).get('/hot', ctx))) throw new Error('miss'); },
  useCacheGet: uc ? async () => { const e = await uc.get('uc-hot', []); if (!e) throw new Error('miss'); } : null,
  loader: async () => { await loader(1); },
};
const out = {};
for (const [name, op] of Object.entries(ops)) {
  if (!op) continue;
  const loop = async (n) => { const t = performance.now(); for (let i = 0; i < n; i++) await op(); return ((performance.now() - t) * 1e6) / n; };
  const n = name === 'useCacheGet' ? 20000 : 100000;
  await loop(n);
  const samples = [];
  for (let r = 0; r < 7; r++) samples.push(await loop(n));
  out[name] = samples.sort((a, b) => a - b)[3];
}
console.log(JSON.stringify(out));
process.exit(0);
`;

const builds = [{ name: 'this tree', dist: path.join(root, 'dist') }];
if (process.env.BENCH_BASELINE_DIST)
  builds.push({ name: `baseline (${process.env.BENCH_BASELINE_DIST})`, dist: path.resolve(process.env.BENCH_BASELINE_DIST) });
for (const build of builds) {
  if (!existsSync(path.join(build.dist, 'handler.js'))) throw new Error(`${build.dist}/handler.js is missing: run \`npm run build\` there first`);
}
const workerFile = path.join(root, '.cache', 'bench', 'l1-hit-worker.mjs');
mkdirSync(path.dirname(workerFile), { recursive: true });
writeFileSync(workerFile, WORKER);

const redis = await startRedis();
const results = new Map<string, Record<string, number>[]>(builds.map((b) => [b.name, []]));
const loads: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  // Both orders: A B, then B A.
  for (const build of round % 2 === 0 ? builds : [...builds].reverse()) {
    loads.push(loadAverage());
    const out = execFileSync(process.execPath, [workerFile, build.dist, redis.url], { cwd: root, encoding: 'utf8' });
    results.get(build.name)!.push(JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, number>);
  }
}
await redis.stop();

const LABELS: Record<string, string> = {
  handlerGet: 'handler get, 20 KB page, one handler',
  newHandlerGet: 'handler get, a new handler per get (as Next does per request)',
  useCacheGet: "'use cache' get (a stream per hit)",
  loader: 'cache(fn) call, L1 hit',
};
const rows = Object.keys(LABELS)
  .filter((op) => results.get(builds[0]!.name)!.some((r) => r[op] !== undefined))
  .map((op) => [
    LABELS[op]!,
    ...builds.map((b) => {
      const values = results
        .get(b.name)!
        .map((r) => r[op])
        .filter((v): v is number => v !== undefined);
      return values.length ? `${(median(values) / 1000).toFixed(2)} µs` : 'n/a';
    }),
  ]);
console.log(`\n### L1 hit of the built package (median of ${ROUNDS} processes per build, 7 loops each)\n`);
console.log(markdownTable(['operation', ...builds.map((b) => b.name)], rows));
console.log(`\n${machineLine()}; ${loadLine(loads)}`);
