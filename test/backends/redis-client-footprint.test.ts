/**
 * What loading the Redis backend does to the rest of the process. A module that defines `class X extends String`
 * (ioredis 6's RESP3 `VerbatimString`, resp/verbatim-string.js) makes V8 deoptimise `String.prototype.charCodeAt` for
 * the whole process on Node 20: Next's ETag hash (fnv1a over every cached page's HTML, `sendRenderResult`) took 5x
 * longer, the main reason a hot ISR page served 0.5x the requests of Next's built-in cache (bench/e2e, issue 14).
 * `node bench/run.mjs string-protector` measures it. Checked on the built package, as Next loads it: every CommonJS
 * module the backend loaded, read for a String subclass.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis } from '../support/servers.js';

const root = path.resolve(__dirname, '../..');
let redis: Awaited<ReturnType<typeof startRedis>>;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

/** Runs in a fresh process: the backend from the built package (CJS, as Next requires it), one set and get. */
const SCRIPT = `
const { readFileSync } = require('node:fs');
const { RedisBackend } = require(process.argv[1]);
(async () => {
  const backend = new RedisBackend({ url: process.argv[2] });
  await backend.set('footprint', Buffer.from('x'));
  const got = await backend.get('footprint');
  await backend.close();
  const subclasses = Object.keys(require.cache).filter((file) => /\\bextends\\s+String\\b/.test(readFileSync(file, 'utf8')));
  const loaded = Object.keys(require.cache).filter((file) => file.includes('node_modules/ioredis/')).length;
  console.log(JSON.stringify({ got: got && Buffer.from(got).toString(), loaded, subclasses }));
})();
`;

describe('the Redis backend in a Next.js process', () => {
  it('loads no module that subclasses String (V8 would slow every charCodeAt loop in the process)', () => {
    const out = execFileSync(process.execPath, ['-e', SCRIPT, path.join(root, 'dist/index.cjs'), redis.url], { encoding: 'utf8' });
    const result = JSON.parse(out.trim().split('\n').at(-1)!) as { got: string; loaded: number; subclasses: string[] };
    expect(result.got).toBe('x');
    expect(result.loaded).toBeGreaterThan(10); // the client's modules were loaded and read
    expect(result.subclasses).toEqual([]);
  });
});
