/**
 * Cold-process reads, as a site's servers do them: fresh child processes (each with its own CacheStack, connections
 * and empty L1) read distinct keys they never read before, once each, for every entry kind (APP_PAGE, APP_ROUTE,
 * FETCH, IMAGE, PAGES, 'use cache') at two sizes, interleaved with a raw ioredis `getBuffer` + msgpackr `unpack` of
 * the same value under its own key (the floor) in the same process, read for read. Then the Redis commands one cold
 * FETCH get sends, and a CPU profile (--cpu-prof) of a child reading 5 KB FETCH entries, summarised.
 *
 *   npm run bench -- cold          BENCH_COLD_CHILDREN (8) processes x BENCH_COLD_READS (30) keys per cell
 *                                  BENCH_COLD_KINDS=FETCH,APP_PAGE  BENCH_COLD_SHARED_TAGS=1 (no per-key tag)
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { Packr } from 'msgpackr';
import { RedisBackend } from '../src/backends/redis.js';
import { useCacheHandlerFor } from '../src/next/use-cache-handler.js';
import type { IncrementalCacheValue } from '../src/wire/next-types.js';
import { startRedis } from '../test/support/servers.js';
import { createOurs } from './ours.js';
import { summariseProfile } from './profile.js';
import { formatNumber, loadAverage, machineLine, makePage, markdownTable, median, prng, quantile, quietTeardown } from './support.js';

const ALL_KINDS = ['APP_PAGE', 'APP_ROUTE', 'FETCH', 'IMAGE', 'PAGES', 'use cache'] as const;
type Kind = (typeof ALL_KINDS)[number];
const KINDS = ALL_KINDS.filter((kind) => !process.env.BENCH_COLD_KINDS || process.env.BENCH_COLD_KINDS.split(',').includes(kind));
/** BENCH_COLD_SHARED_TAGS=1: every key carries only tags all keys share (their states are read once per process). */
const OWN_TAG = process.env.BENCH_COLD_SHARED_TAGS !== '1';
const SIZES = [5 * 1024, 50 * 1024];
const CHILDREN = Number(process.env.BENCH_COLD_CHILDREN ?? 8);
const READS = Number(process.env.BENCH_COLD_READS ?? 30);
const PROFILE_READS = 1500;
/** BENCH_COLD_PROFILE_KIND: the kind the CPU profile reads (FETCH by default). */
const PROFILE_KIND = (process.env.BENCH_COLD_PROFILE_KIND ?? 'FETCH') as Kind;
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, variableMapSize: true });
const GET_CTX: Record<Exclude<Kind, 'use cache'>, Record<string, unknown>> = {
  APP_PAGE: { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false },
  APP_ROUTE: { kind: 'APP_ROUTE', isRoutePPREnabled: false, isFallback: false },
  FETCH: { kind: 'FETCH', fetchCache: true, fetchUrl: 'https://api.example.com/items' },
  IMAGE: { kind: 'IMAGE', isRoutePPREnabled: false, isFallback: false },
  PAGES: { kind: 'PAGES', isRoutePPREnabled: false, isFallback: false },
};

/** The pathname of page `i`: an App Router route `/items/[size]/[id]`. */
const pathnameOf = (bytes: number, i: number) => `/items/${bytes}/${i}`;

/**
 * A value of `kind` of about `bytes`, as Next hands it to a handler. A page's and a route's tags are Next's implicit
 * tags (getImplicitTags: the route pattern's segments, shared by every page of the route, and the pathname, its own)
 * and a fetch tag.
 */
function sampleValue(kind: Kind, bytes: number, i: number): IncrementalCacheValue | Uint8Array {
  const page = makePage(bytes, 7);
  const rand = prng(bytes);
  const leaf = kind === 'APP_ROUTE' ? 'route' : 'page';
  const tags = [
    '_N_T_/layout',
    '_N_T_/items/layout',
    '_N_T_/items/[size]/layout',
    ...(kind === 'APP_ROUTE' ? [] : ['_N_T_/items/[size]/[id]/layout']),
    `_N_T_/items/[size]/[id]/${leaf}`,
    ...(OWN_TAG ? [`_N_T_${pathnameOf(bytes, i)}`] : []),
    'items',
  ].join(',');
  switch (kind) {
    case 'APP_PAGE':
      return { kind, html: page.html, rscData: page.rscData, headers: { 'x-next-cache-tags': tags }, status: 200, postponed: undefined };
    case 'APP_ROUTE':
      return { kind, body: Buffer.from(page.html), status: 200, headers: { 'content-type': 'text/html', 'x-next-cache-tags': tags } };
    case 'FETCH':
      return {
        kind,
        data: {
          headers: { 'content-type': 'application/json' },
          body: Buffer.from(page.html).toString('base64').slice(0, bytes),
          url: 'https://api.example.com/items',
          status: 200,
        },
        tags: fetchTags(i),
        revalidate: 3600,
      };
    case 'IMAGE':
      return {
        kind,
        etag: `W/"${i}"`,
        upstreamEtag: `"${i}"`,
        buffer: Buffer.from(Array.from({ length: bytes }, () => Math.floor(rand() * 256))),
        extension: 'webp',
        revalidate: 3600,
      };
    case 'PAGES':
      return { kind, html: page.html, pageData: { pageProps: { text: page.rscData.toString('utf8') } }, headers: { 'x-next-cache-tags': tags }, status: 200 };
    case 'use cache':
      return Buffer.from(page.html);
  }
}

const fetchTags = (i: number) => (OWN_TAG ? ['items', `item-${i}`] : ['items']);
/** Next 16.4's keys: `/route-cache/<KIND>/<sha256 of the route>/$<pathname>` for pages and routes. */
const ROUTE_SHA = createHash('sha256').update('/items/[size]/[id]/page').digest('hex');
const keyOf = (kind: Kind, bytes: number, i: number) =>
  kind === 'APP_PAGE' || kind === 'APP_ROUTE' || kind === 'PAGES'
    ? `/route-cache/${kind}/${ROUTE_SHA}/$${pathnameOf(bytes, i)}`
    : `/cold/${kind.replace(' ', '-')}/${bytes}/${i}`;
const rawKeyOf = (kind: Kind, bytes: number, i: number) => `raw:${keyOf(kind, bytes, i)}`;
const streamOf = (bytes: Uint8Array) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });

async function readers(url: string) {
  const backend = new RedisBackend({ url, keyPrefix: 'ck:' });
  const ours = await createOurs(backend);
  const useCache = useCacheHandlerFor(() => ours.stack);
  const raw = new Redis(url, { lazyConnect: false });
  await raw.ping();
  return {
    ours,
    raw,
    async read(kind: Kind, key: string, i: number): Promise<void> {
      if (kind === 'use cache') {
        const entry = await useCache.get(key, []);
        if (!entry) throw new Error(`miss: ${key}`);
        await new Response(entry.value).arrayBuffer();
        return;
      }
      // Next passes a fetch's tags (and the page's implicit tags) in the get context.
      const ctx = kind === 'FETCH' ? { ...GET_CTX.FETCH, tags: fetchTags(i), softTags: ['_N_T_/layout', '_N_T_/items/page'] } : { ...GET_CTX[kind] };
      if (!(await ours.request().get(key, ctx))) throw new Error(`miss: ${key}`);
    },
    async readRaw(key: string): Promise<void> {
      const bytes = await raw.getBuffer(key);
      if (!bytes) throw new Error(`raw miss: ${key}`);
      packr.unpack(bytes);
    },
    async write(kind: Kind, bytes: number, i: number): Promise<void> {
      const value = sampleValue(kind, bytes, i);
      const key = keyOf(kind, bytes, i);
      if (kind === 'use cache') {
        const entry = {
          value: streamOf(value as Uint8Array),
          tags: ['items', `item-${i}`],
          stale: 300,
          timestamp: Date.now(),
          expire: 86400,
          revalidate: 3600,
        };
        await useCache.set(key, Promise.resolve(entry));
      } else {
        const v = value as IncrementalCacheValue;
        const tags = v.kind === 'FETCH' ? v.tags : undefined;
        await ours.request().set(key, v, { ...(kind === 'FETCH' ? { fetchCache: true, tags } : {}), cacheControl: { revalidate: 3600, expire: 86400 } });
      }
      await raw.set(rawKeyOf(kind, bytes, i), packr.pack(kind === 'use cache' ? Buffer.from(value as Uint8Array) : value));
    },
    close: async () => {
      raw.disconnect();
      await ours.stack.close();
    },
  };
}

/** A child: reads its own slice of keys once each, every cell round-robin, ours and raw alternating first. */
async function child(url: string, index: number, mode: string): Promise<void> {
  const r = await readers(url);
  // Connections open and scripts load before timing (a server has done that before its first cached read).
  await r.ours.request().get('/cold/warm-up', { ...GET_CTX.APP_PAGE });
  if (mode === 'profile') {
    for (let i = 0; i < PROFILE_READS; i++) await r.read(PROFILE_KIND, keyOf(PROFILE_KIND, SIZES[0]!, 100_000 + i), 100_000 + i);
    await r.close();
    return;
  }
  const samples: Record<string, { ours: number[]; raw: number[] }> = {};
  for (let n = 0; n < READS; n++) {
    const i = index * READS + n;
    for (const bytes of SIZES) {
      for (const kind of KINDS) {
        const cell = (samples[`${kind}|${bytes}`] ??= { ours: [], raw: [] });
        const timeOurs = async () => {
          const t0 = process.hrtime.bigint();
          await r.read(kind, keyOf(kind, bytes, i), i);
          cell.ours.push(Number(process.hrtime.bigint() - t0) / 1000);
        };
        const timeRaw = async () => {
          const t0 = process.hrtime.bigint();
          await r.readRaw(rawKeyOf(kind, bytes, i));
          cell.raw.push(Number(process.hrtime.bigint() - t0) / 1000);
        };
        if (n % 2 === 0) await timeOurs().then(timeRaw);
        else await timeRaw().then(timeOurs);
      }
    }
  }
  process.stdout.write(`${JSON.stringify(samples)}\n`);
  await r.close();
}

async function main(): Promise<void> {
  const report: string[] = [];
  const out = (text: string) => {
    console.log(text);
    report.push(text);
  };
  const redis = await startRedis();
  const loads = [loadAverage()];
  const writer = await readers(redis.url);
  const keys = CHILDREN * READS;
  for (const bytes of SIZES) for (const kind of KINDS) for (let i = 0; i < keys; i++) await writer.write(kind, bytes, i);
  for (let i = 0; i < PROFILE_READS + 20; i++) await writer.write(PROFILE_KIND, SIZES[0]!, 100_000 + i);

  const self = fileURLToPath(import.meta.url);
  const all: Record<string, { ours: number[]; raw: number[]; perChild: number[] }> = {};
  for (let c = 0; c < CHILDREN; c++) {
    const out = spawnSync(process.execPath, ['--enable-source-maps', self, 'child', redis.url, String(c), 'cells'], { encoding: 'utf8', maxBuffer: 64 << 20 });
    if (out.status !== 0) throw new Error(`child ${c} exited with ${out.status}: ${out.stderr}`);
    const samples = JSON.parse(out.stdout.trim().split('\n').pop()!) as Record<string, { ours: number[]; raw: number[] }>;
    for (const [cell, s] of Object.entries(samples)) {
      const acc = (all[cell] ??= { ours: [], raw: [], perChild: [] });
      acc.ours.push(...s.ours);
      acc.raw.push(...s.raw);
      acc.perChild.push(median(s.raw) / median(s.ours));
    }
    loads.push(loadAverage());
  }

  out(`\n## cold: fresh processes, distinct keys read once each (${machineLine()})\n`);
  out(
    `${CHILDREN} child processes x ${READS} keys per cell, each key read once, ours and the raw GET of the same value alternating; ` +
      `load average ${Math.min(...loads).toFixed(2)}-${Math.max(...loads).toFixed(2)}. µs per read: median (p10-p90); x raw = raw median / ours median, ` +
      'and its range over the child processes (the spread).\n',
  );
  const rows: string[][] = [];
  for (const bytes of SIZES) {
    for (const kind of KINDS) {
      const cell = all[`${kind}|${bytes}`]!;
      const fmt = (v: number[]) => `${formatNumber(median(v))} (${formatNumber(quantile(v, 0.1))}-${formatNumber(quantile(v, 0.9))})`;
      rows.push([
        `${kind}, ${bytes / 1024} KB`,
        fmt(cell.ours),
        fmt(cell.raw),
        `${(median(cell.raw) / median(cell.ours)).toFixed(2)}x`,
        `${Math.min(...cell.perChild).toFixed(2)}-${Math.max(...cell.perChild).toFixed(2)}`,
      ]);
    }
  }
  out(markdownTable(['entry', 'cachekit-next get, µs', 'raw getBuffer + unpack, µs', 'x raw', 'x raw per child'], rows));

  // Commands one cold get of each kind sends: a fresh stack (empty L1 and tag states) reads 20 keys nobody read in it.
  const counter = new Redis(redis.url);
  const stats = async () =>
    Object.fromEntries(
      [...(await counter.info('commandstats')).matchAll(/cmdstat_(\w+(?:\|\w+)?):calls=(\d+)/g)].map((m) => [m[1]!, Number(m[2])] as const),
    ) as Record<string, number>;
  out('\nRedis commands per cold 5 KB get (a fresh stack reading 20 keys it never read):\n');
  const commandRows: string[][] = [];
  for (const kind of KINDS) {
    const fresh = await readers(redis.url);
    await fresh.ours.request().get('/cold/warm-up', { ...GET_CTX.APP_PAGE });
    const before = await stats();
    for (let n = 0; n < 20; n++) {
      const i = n % keys; // written above; never read by this fresh stack
      await fresh.read(kind, keyOf(kind, SIZES[0]!, i), i);
    }
    const after = await stats();
    const perGet = Object.entries(after)
      .map(([cmd, calls]) => [cmd, (calls - (before[cmd] ?? 0)) / 20] as const)
      .filter(([cmd, calls]) => calls > 0 && cmd !== 'info');
    commandRows.push([kind, perGet.map(([cmd, calls]) => `${cmd} ${calls}`).join(', ')]);
    await fresh.close();
  }
  out(markdownTable(['entry', 'commands per get'], commandRows));
  counter.disconnect();

  // Where a cold 5 KB get (of BENCH_COLD_PROFILE_KIND) spends its time: a child reading 1,500 of them under --cpu-prof.
  const profileDir = path.join(process.cwd(), '.cache', 'bench', 'profiles');
  rmSync(profileDir, { recursive: true, force: true });
  mkdirSync(profileDir, { recursive: true });
  const started = performance.now();
  const prof = spawnSync(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, self, 'child', redis.url, '0', 'profile'], { encoding: 'utf8' });
  const wallUs = ((performance.now() - started) * 1000) / PROFILE_READS;
  if (prof.status !== 0) throw new Error(`profile child exited with ${prof.status}: ${prof.stderr}`);
  const file = readdirSync(profileDir).find((name) => name.endsWith('.cpuprofile'))!;
  out(`\nCPU profile of ${PROFILE_READS} cold 5 KB ${PROFILE_KIND} gets in one fresh process (${path.join('.cache/bench/profiles', file)}):`);
  out(summariseProfile(JSON.parse(readFileSync(path.join(profileDir, file), 'utf8')), PROFILE_READS, wallUs));

  // A full run (every kind, own tags) is kept: bench/results/cold-<date>.md.
  if (KINDS.length === ALL_KINDS.length && OWN_TAG) {
    const file = path.join(process.cwd(), 'bench', 'results', `cold-${new Date().toISOString().slice(0, 10)}.md`);
    writeFileSync(file, `${report.join('\n')}\n`);
    console.log(`\nwrote ${path.relative(process.cwd(), file)}`);
  }
  await writer.close();
  quietTeardown();
  await redis.stop();
}

if (process.argv[2] === 'child') {
  await child(process.argv[3]!, Number(process.argv[4]), process.argv[5]!);
  process.exit(0);
} else {
  await main();
  process.exit(0);
}
