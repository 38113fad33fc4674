/**
 * `revalidateTag(tag)` latency with 100 / 10,000 / 100,000 cached entries, for cachekit-next and the peers, all on
 * one local redis-server. Every entry is written through each handler's own `set` (page tags in
 * `x-next-cache-tags`, as Next writes them); each timed call revalidates the tag of one entry (a page's own tag, the
 * common case), so the work that depends on the number of entries is the handler's bookkeeping, not the deletion.
 *
 *   node bench/run.mjs revalidate-tag
 */
import { Redis } from 'ioredis';
import { RedisBackend } from '../src/backends/redis.js';
import { startRedis } from '../test/support/servers.js';
import { createOurs } from './ours.js';
import { createForte, createTrieb, type LegacyHandler } from './peers.js';
import { formatBytes, formatNumber, loadAverage, loadLine, machineLine, markdownTable, median, prng, quietTeardown, settle } from './support.js';

const COUNTS = [100, 10_000, 100_000];
/** Per contender and count: stop repeating after this many calls or this long, whichever first (at least MIN_REPS). */
const MAX_REPS = 40;
const MIN_REPS = 5;
const BUDGET_MS = 4_000;
const FILL_CONCURRENCY = 64;

const html = (i: number) =>
  `<!DOCTYPE html><html><body><main><h1>Post ${i} — café</h1><p>${'Lorem ipsum dolor sit amet. '.repeat(16)}</p></main></body></html>`;
const tagsOf = (i: number) => `_N_T_/layout,_N_T_/blog/layout,_N_T_/blog/[slug]/page,_N_T_/blog/post-${i},post-${i},posts`;
const keyOf = (i: number) => `/blog/post-${i}`;
const GET_CTX = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false };

interface Contender {
  name: string;
  handler: LegacyHandler;
  /** Redis keys (or hashes) holding the handler's tag bookkeeping, for their memory. */
  tagKeys: () => Promise<string[]>;
}

async function fill(handler: LegacyHandler, from: number, to: number): Promise<void> {
  let next = from;
  const worker = async () => {
    while (next < to) {
      const i = next++;
      await handler.set(
        keyOf(i),
        {
          kind: 'APP_PAGE',
          html: html(i),
          rscData: Buffer.from(`0:["$","h1",null,{"children":"Post ${i}"}]\n`),
          headers: { 'x-next-cache-tags': tagsOf(i) },
          status: 200,
        },
        { cacheControl: { revalidate: 3600, expire: 86_400 }, isRoutePPREnabled: false, isFallback: false },
      );
    }
  };
  await Promise.all(Array.from({ length: FILL_CONCURRENCY }, worker));
}

async function memoryOf(raw: Redis, keys: string[]): Promise<number> {
  let total = 0;
  for (const key of keys) total += Number((await raw.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) ?? 0);
  return total;
}

async function main(): Promise<void> {
  const redis = await startRedis({ args: ['--notify-keyspace-events', 'Exe'] });
  const raw = new Redis({ host: redis.host, port: redis.port });
  const backend = new RedisBackend({ url: redis.url, keyPrefix: 'ck:' });
  const ours = await createOurs(backend);
  const forte = await createForte(redis.url, 'forte:');
  const trieb = await createTrieb(redis.url, 'trieb:');
  const scan = async (pattern: string) => {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await raw.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      found.push(...keys);
    } while (cursor !== '0');
    return found;
  };
  const all: Contender[] = [
    { name: 'cachekit-next', handler: ours.handler, tagKeys: () => scan('ck:cachekit:{bench.tags}:*') },
    {
      name: '@fortedigital/nextjs-cache-handler 3.3.0',
      handler: forte.handler,
      tagKeys: async () => ['forte:__sharedTags__', 'forte:__sharedTagsTtl__', 'forte:__revalidated_tags__'],
    },
    {
      name: '@trieb.work/nextjs-turbo-redis-cache 1.18.0',
      handler: trieb.handler,
      tagKeys: async () => ['trieb:__sharedTags__', 'trieb:__revalidated_tags__'],
    },
  ];
  const only = process.env.BENCH_ONLY;
  const contenders = only ? all.filter((c) => c.name.includes(only)) : all;

  const loads: number[] = [loadAverage()];
  const latency = new Map<string, Map<number, number[]>>(contenders.map((c) => [c.name, new Map()]));
  const tagMemory = new Map<string, Map<number, number>>(contenders.map((c) => [c.name, new Map()]));
  const fillSeconds = new Map<string, Map<number, number>>(contenders.map((c) => [c.name, new Map()]));
  const rand = prng(7);
  let filled = 0;
  for (const count of COUNTS) {
    for (const c of contenders) {
      const started = performance.now();
      await fill(c.handler, filled, count);
      fillSeconds.get(c.name)!.set(count, (performance.now() - started) / 1000);
    }
    // Let trieb's pub/sub echo of its own writes drain before timing anything.
    await new Promise((r) => setTimeout(r, 500));
    await settle();
    // Entries revalidated at earlier counts are gone for the peers: pick fresh ones (the same for every contender).
    const used = new Set<number>();
    const pick = () => {
      for (;;) {
        const i = Math.floor(rand() * count);
        if (!used.has(i)) {
          used.add(i);
          return i;
        }
      }
    };
    const picks = Array.from({ length: MAX_REPS }, pick);
    for (const c of contenders) {
      // Warm-up (JIT, connections) on tags no entry carries, before the first timed calls only: a peer's warm-up at
      // 100,000 entries would cost seconds and prove nothing more.
      if (count === COUNTS[0]) for (let w = 0; w < 5; w++) await c.handler.revalidateTag(`warm-up-${w}`);
      const samples: number[] = [];
      const started = performance.now();
      for (const i of picks) {
        if (samples.length >= MIN_REPS && performance.now() - started > BUDGET_MS) break;
        const before = await c.handler.get(keyOf(i), { ...GET_CTX });
        if (!before) throw new Error(`${c.name}: entry ${i} missing before revalidateTag`);
        await settle();
        const t0 = performance.now();
        await c.handler.revalidateTag(`post-${i}`);
        samples.push(performance.now() - t0);
        // The call must have done its job, or its time means nothing.
        if (await c.handler.get(keyOf(i), { ...GET_CTX })) throw new Error(`${c.name}: entry ${i} still served after revalidateTag`);
      }
      latency.get(c.name)!.set(count, samples);
      tagMemory.get(c.name)!.set(count, await memoryOf(raw, await c.tagKeys()));
      loads.push(loadAverage());
    }
    filled = count;
    console.error(`[revalidate-tag] ${count} entries done (load ${loadAverage().toFixed(2)})`);
  }

  const ms = (values: number[]) => `${formatNumber(median(values), median(values) < 10 ? 2 : 1)} ms`;
  console.log(`\n### revalidateTag latency (one page's tag) vs number of cached entries: median (min-max) over n calls\n`);
  console.log(`${machineLine()}; ${loadLine(loads)}\n`);
  console.log(
    markdownTable(
      ['contender', ...COUNTS.map((n) => `${formatNumber(n, 0)} entries`)],
      contenders.map((c) => [
        c.name,
        ...COUNTS.map((n) => {
          const values = latency.get(c.name)!.get(n)!;
          return `${ms(values)} (${formatNumber(Math.min(...values), 2)}-${formatNumber(Math.max(...values), 1)}, n=${values.length})`;
        }),
      ]),
    ),
  );
  console.log('\n### Tag bookkeeping kept in Redis (`MEMORY USAGE` of the tag keys after the calls above)\n');
  console.log(
    markdownTable(
      ['contender', ...COUNTS.map((n) => `${formatNumber(n, 0)} entries`)],
      contenders.map((c) => [c.name, ...COUNTS.map((n) => formatBytes(tagMemory.get(c.name)!.get(n)!))]),
    ),
  );
  console.log('\n### Time to write the entries through each handler (concurrency 64; cumulative count)\n');
  console.log(
    markdownTable(
      ['contender', ...COUNTS.map((n, i) => `${formatNumber(i === 0 ? n : n - COUNTS[i - 1]!, 0)} more`)],
      contenders.map((c) => [c.name, ...COUNTS.map((n) => `${formatNumber(fillSeconds.get(c.name)!.get(n)!, 2)} s`)]),
    ),
  );

  quietTeardown();
  await ours.stack.close();
  await backend.close();
  await forte.close();
  raw.disconnect();
  await redis.stop();
  process.exit(0);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
