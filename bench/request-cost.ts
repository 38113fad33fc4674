/**
 * What each request costs the handlers in CPU before any I/O, in one process, against a real redis-server (entries
 * are L1 hits, tag states known): Next constructs the legacy handler and calls resetRequestCache on every request, and
 * calls the 'use cache' handler's refreshTags, getExpiration and get. Median CPU µs per call over 11 rounds, after a warm-up.
 *
 *   npm run bench -- request-cost
 */
import { RedisBackend } from '../src/backends/redis.js';
import { useCacheHandlerFor } from '../src/next/use-cache-handler.js';
import { startRedis } from '../test/support/servers.js';
import { createOurs } from './ours.js';
import { loadAverage, machineLine, makePage, markdownTable, median, quietTeardown } from './support.js';

const ROUNDS = 11;
const CALLS = 20_000;
const redis = await startRedis();
const ours = await createOurs(new RedisBackend({ url: redis.url, keyPrefix: 'ck:' }));
const useCache = useCacheHandlerFor(() => ours.stack);
const page = makePage(20 * 1024);
const tags = '_N_T_/layout,_N_T_/blog/layout,_N_T_/blog/page,_N_T_/blog,posts';
await ours
  .request()
  .set(
    '/blog',
    { kind: 'APP_PAGE', html: page.html, rscData: page.rscData, headers: { 'x-next-cache-tags': tags }, status: 200, postponed: undefined },
    { cacheControl: { revalidate: 3600, expire: 86400 } },
  );
const bytes = Buffer.from(page.html.slice(0, 5000));
const entry = () => ({
  value: new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  }),
  tags: ['posts'],
  stale: 300,
  timestamp: Date.now(),
  expire: 86400,
  revalidate: 3600,
});
await useCache.set('uc-key', Promise.resolve(entry()));
const pageCtx = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false };
const softTags = ['_N_T_/layout', '_N_T_/uc/page'];
if (!(await ours.request().get('/blog', pageCtx)) || !(await useCache.get('uc-key', softTags))) throw new Error('expected hits');

const ops: [string, () => unknown][] = [
  ['legacy: new handler (constructor)', () => ours.request()],
  ['legacy: new handler + resetRequestCache()', () => (ours.request() as unknown as { resetRequestCache(): void }).resetRequestCache()],
  ['legacy: new handler + get of a 20 KB page (L1 hit)', () => ours.request().get('/blog', pageCtx)],
  ["'use cache': refreshTags()", () => useCache.refreshTags()],
  ["'use cache': getExpiration(2 soft tags)", () => useCache.getExpiration(softTags)],
  ["'use cache': get of a 5 KB entry (L1 hit), stream not read", () => useCache.get('uc-key', softTags)],
  ["'use cache': get of a 5 KB entry (L1 hit) + reading its stream", async () => new Response((await useCache.get('uc-key', softTags))!.value).arrayBuffer()],
  ['for scale: reading a one-chunk ReadableStream of 5 KB (any handler)', () => new Response(entry().value).arrayBuffer()],
];

const load = loadAverage();
const rows: string[][] = [];
for (const [label, op] of ops) {
  const rounds: number[] = [];
  for (let i = 0; i < CALLS / 10; i++) await op(); // warm-up: the JIT, not measured
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.cpuUsage();
    for (let i = 0; i < CALLS / 10; i++) await op();
    const used = process.cpuUsage(start);
    rounds.push(((used.user + used.system) / CALLS) * 10);
  }
  rows.push([label, median(rounds).toFixed(2), `${Math.min(...rounds).toFixed(2)}-${Math.max(...rounds).toFixed(2)}`]);
}
console.log(`\n## request-cost (${machineLine()}, load average ${load.toFixed(2)})\n`);
console.log(markdownTable(['per request', 'CPU µs (median)', 'range over rounds'], rows));
quietTeardown();
await ours.stack.close();
await redis.stop();
process.exit(0);
