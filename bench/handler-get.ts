/**
 * Handler-level `get` of an APP_PAGE entry at 20 KB, 200 KB and 2 MB, concurrency 1, every contender in one run
 * against one local redis-server: the floor (one raw GET + MessagePack decode), cachekit-next from Redis (no L1) and
 * from its L1, and the two peers. Rounds are interleaved (contender order rotates) and the median round is reported.
 * Also: stored bytes per contender, and a breakdown of where our L2 read spends its time.
 *
 *   node bench/run.mjs handler-get
 */
import { Redis } from 'ioredis';
import { createClient, RESP_TYPES } from '@redis/client';
import { MemoryBackend } from '../src/backends/memory.js';
import { RedisBackend } from '../src/backends/redis.js';
import { handlerEntrySerializer } from '../src/wire/next-entry.js';
import { startRedis } from '../test/support/servers.js';
import { createOurs } from './ours.js';
import { createForte, createNextBuiltIn, createTrieb, type LegacyHandler } from './peers.js';
import {
  appPageValue as appPage,
  floorPackr as packr,
  formatBytes,
  formatNumber,
  interleavedRounds,
  loadAverage,
  loadLine,
  machineLine,
  makePage,
  markdownTable,
  median,
  opsPerSecond,
  PAGE_BREAKDOWN_ROUNDS,
  PAGE_GET_CONTEXT,
  PAGE_KEY,
  PAGE_ROUNDS,
  PAGE_SIZES,
  pageSetContext as setCtx,
  quietTeardown,
  settle,
  type Page,
} from './support.js';

const SIZES = PAGE_SIZES;
const ROUNDS = PAGE_ROUNDS;
const BREAKDOWN_ROUNDS = PAGE_BREAKDOWN_ROUNDS;
const KEY = PAGE_KEY;
const GET_CTX = PAGE_GET_CONTEXT;

interface Contender {
  name: string;
  /** Stores the page through the contender's own write path. */
  write(page: Page): Promise<void>;
  /** One read, returning the page's html and RSC payload (verified against what was written). */
  read(): Promise<{ html: string; rscData: Buffer } | null>;
  /** Where the entry lives in Redis (null: nothing stored there, e.g. an L1-only reading). */
  redisKey: string | null;
}

function handlerContender(name: string, handler: LegacyHandler, redisKey: string | null): Contender {
  return {
    name,
    redisKey,
    write: (page) => handler.set(KEY, appPage(page), setCtx()),
    read: async () => {
      const result = await handler.get(KEY, { ...GET_CTX });
      return (result?.value as { html: string; rscData: Buffer } | undefined) ?? null;
    },
  };
}

async function main(): Promise<void> {
  const redis = await startRedis({ args: ['--notify-keyspace-events', 'Exe'] });
  const raw = new Redis({ host: redis.host, port: redis.port });
  const nodeRedis = createClient({ url: redis.url }).withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
  await nodeRedis.connect();

  const backend = new RedisBackend({ url: redis.url, keyPrefix: 'ck:' });
  // Three configurations on one backend (one shared connection set, as in production).
  const oursL2 = await createOurs(backend, { l1: false });
  const oursL2Plain = await createOurs(backend, { l1: false, compression: false, keyPrefix: 'cachekit-plain:' });
  const oursL1 = await createOurs(backend, { keyPrefix: 'cachekit-l1:' });
  // The handler's own cost of an L1 hit, without the event-loop turn that lets Next merge concurrent requests.
  const oursL1Now = await createOurs(backend, { keyPrefix: 'cachekit-l1now:', mergeRequests: false });
  // The handler with no network at all (L1 off, in-process L2): its own cost over the decode.
  const oursMemory = await createOurs(new MemoryBackend(), { l1: false, compression: false });
  const forte = await createForte(redis.url, 'forte:');
  const trieb = await createTrieb(redis.url, 'trieb:', { redisGetDeduplication: false });
  const triebDefault = await createTrieb(redis.url, 'triebd:');
  // Next's own cache as `next start` builds it: the L1 target is measured against its in-memory hit.
  const nextBuiltIn = createNextBuiltIn();

  const FLOOR_KEY = `floor:${KEY}`;
  const contenders: Contender[] = [
    {
      name: 'floor: ioredis `getBuffer` + msgpackr unpack',
      redisKey: FLOOR_KEY,
      write: async (page) => void (await raw.set(FLOOR_KEY, packr.pack(appPage(page)))),
      read: async () => packr.unpack((await raw.getBuffer(FLOOR_KEY))!) as { html: string; rscData: Buffer },
    },
    {
      name: 'floor (node-redis 6): `GET` as Buffer + msgpackr unpack',
      redisKey: null, // same key as the floor above
      write: async () => {},
      read: async () => packr.unpack((await nodeRedis.get(FLOOR_KEY)) as unknown as Buffer) as { html: string; rscData: Buffer },
    },
    handlerContender('cachekit-next, L2 hit (Redis, no L1; default compression)', oursL2.handler, oursL2.redisKey(KEY)),
    handlerContender('cachekit-next, L2 hit, `compression: false`', oursL2Plain.handler, oursL2Plain.redisKey(KEY)),
    handlerContender('cachekit-next, L1 hit (default: answers after one event-loop turn, `mergeRequests`)', oursL1.handler, null),
    handlerContender('cachekit-next, L1 hit, `mergeRequests: false` (the handler alone)', oursL1Now.handler, null),
    handlerContender("Next's built-in cache, memory hit (its LRU; local, not shared)", nextBuiltIn.handler, null),
    handlerContender('@fortedigital/nextjs-cache-handler 3.3.0 (redis-strings)', forte.handler, forte.redisKey(KEY)),
    handlerContender('@trieb.work/nextjs-turbo-redis-cache 1.18.0, read from Redis (`redisGetDeduplication: false`)', trieb.handler, trieb.redisKey(KEY)),
    handlerContender('@trieb.work/nextjs-turbo-redis-cache 1.18.0, defaults (10 s in-memory copy of the raw reply)', triebDefault.handler, null),
  ];

  // Where an L2 read of ours goes: the backend call (Lua GET+PTTL) vs a plain GET, and the decode alone.
  const codec = handlerEntrySerializer();
  const plainCodec = handlerEntrySerializer({ thresholdBytes: false });
  let compressedBytes: Uint8Array = new Uint8Array();
  let plainBytes: Uint8Array = new Uint8Array();
  let floorBytes: Buffer = Buffer.alloc(0);
  let forteString = '';
  // Transport rows read the uncompressed entry (the page's full size, like the floor's key).
  const plainStoreKey = oursL2Plain.storeKey(KEY);
  const plainRedisKey = oursL2Plain.redisKey(KEY);
  let htmlBytes: Buffer = Buffer.alloc(0);
  const breakdown: { name: string; op: () => Promise<unknown> }[] = [
    { name: 'ioredis `getBuffer` (bytes only)', op: () => raw.getBuffer(plainRedisKey) },
    { name: 'node-redis 6 `GET` as Buffer (bytes only)', op: () => nodeRedis.get(plainRedisKey) },
    { name: 'RedisBackend.get (bytes only)', op: () => backend.get(plainStoreKey) },
    { name: 'RedisBackend.getWithTtl (Lua GET+PTTL: what our L2 read uses)', op: () => backend.getWithTtl(plainStoreKey) },
    {
      name: 'alternative: ioredis pipeline `GET` + `PTTL` (one round trip, no Lua)',
      op: () => raw.pipeline().getBuffer(plainRedisKey).pttl(plainRedisKey).exec(),
    },
    { name: 'RedisBackend.getWithTtl of the compressed entry (~0.25x the bytes)', op: () => backend.getWithTtl(oursL2.storeKey(KEY)) },
    { name: 'entry decode only, compressed (inflate + unpack + UTF-8)', op: async () => codec.decode(compressedBytes) },
    { name: 'entry decode only, uncompressed (unpack + UTF-8)', op: async () => plainCodec.decode(plainBytes) },
    {
      name: 'cachekit-next handler get over MemoryBackend (L1 off, uncompressed, no I/O; the backend copies the bytes out)',
      op: async () => {
        if (!(await oursMemory.handler.get(KEY, { ...GET_CTX }))) throw new Error('MemoryBackend handler: miss');
      },
    },
    { name: 'UTF-8 decode of the HTML bytes alone (`Buffer#toString`)', op: async () => htmlBytes.toString('utf8') },
    { name: 'msgpackr unpack of the floor payload (no I/O)', op: async () => packr.unpack(floorBytes) },
    { name: 'trieb/forte: JSON.parse of their stored string (no I/O)', op: async () => JSON.parse(forteString) },
  ];

  const loads: number[] = [loadAverage()];
  const results = new Map<string, Map<string, number>>();
  const breakdownResults = new Map<string, Map<string, number>>();
  const stored: { size: string; name: string; strlen: number; memory: number; raw: number }[] = [];

  for (const size of SIZES) {
    const page = makePage(size.bytes);
    for (const contender of contenders) await contender.write(page);
    await oursMemory.handler.set(KEY, appPage(page), setCtx());
    await settle();
    // Every contender must return the page it was given, or its numbers mean nothing.
    for (const contender of contenders) {
      const got = await contender.read();
      if (!got || got.html !== page.html || !Buffer.from(got.rscData).equals(page.rscData)) {
        throw new Error(`${contender.name} did not return the ${size.label} page it stored`);
      }
    }
    for (const contender of contenders) {
      if (contender.redisKey === null) continue;
      const strlen = await raw.strlen(contender.redisKey);
      const memory = Number(await raw.call('MEMORY', 'USAGE', contender.redisKey, 'SAMPLES', '0'));
      if (!strlen) throw new Error(`${contender.name}: nothing stored under ${contender.redisKey}`);
      stored.push({ size: size.label, name: contender.name, strlen, memory, raw: page.rawBytes });
    }
    compressedBytes = (await raw.getBuffer(oursL2.redisKey(KEY)))!;
    plainBytes = (await raw.getBuffer(oursL2Plain.redisKey(KEY)))!;
    floorBytes = (await raw.getBuffer(FLOOR_KEY))!;
    htmlBytes = Buffer.from(page.html, 'utf8');
    forteString = (await raw.get(forte.redisKey(KEY)))!;

    const checked = contenders.map((contender) => ({
      name: contender.name,
      op: async () => {
        if ((await contender.read()) === null) throw new Error(`${contender.name}: miss during the timed loop`);
      },
    }));
    // Warm-up: JIT, connections, tag states, trieb's in-memory copy.
    for (const c of checked) await opsPerSecond(c.op, 100, 3);
    const rounds = await interleavedRounds(checked, ROUNDS, size.ms, () => loads.push(loadAverage()));
    for (const [name, { perRound }] of rounds) {
      if (!results.has(name)) results.set(name, new Map());
      results.get(name)!.set(size.label, median(perRound));
    }
    const breakdownRounds = new Map<string, number[]>(breakdown.map((b) => [b.name, []]));
    for (const b of breakdown) await opsPerSecond(b.op, 50, 3);
    for (let round = 0; round < BREAKDOWN_ROUNDS; round++) {
      for (const b of breakdown) {
        await settle({ gc: true });
        breakdownRounds.get(b.name)!.push(await opsPerSecond(b.op, Math.min(300, size.ms), 3));
      }
    }
    for (const [name, values] of breakdownRounds) {
      if (!breakdownResults.has(name)) breakdownResults.set(name, new Map());
      breakdownResults.get(name)!.set(size.label, median(values));
    }
    console.error(`[handler-get] ${size.label} done (load ${loadAverage().toFixed(2)})`);
  }

  const floorName = contenders[0]!.name;
  const cell = (name: string, label: string) => {
    const value = results.get(name)!.get(label)!;
    const floor = results.get(floorName)!.get(label)!;
    const ratio = value / floor;
    return `${formatNumber(value)} (${ratio >= 10 ? `${formatNumber(ratio, 0)}x` : `${formatNumber(ratio * 100, 0)}%`})`;
  };
  console.log(`\n### Handler-level get of an APP_PAGE entry, ops/s at concurrency 1 (median of ${ROUNDS} interleaved rounds; % of the floor)\n`);
  console.log(`${machineLine()}; ${loadLine(loads)}\n`);
  console.log(
    markdownTable(
      ['contender', ...SIZES.map((s) => s.label)],
      contenders.map((c) => [c.name, ...SIZES.map((s) => cell(c.name, s.label))]),
    ),
  );

  console.log('\n### Stored bytes per entry (Redis `STRLEN` and `MEMORY USAGE` of the entry key; raw = UTF-8 HTML + RSC bytes)\n');
  const storedRows: string[][] = [];
  for (const c of contenders) {
    const rows = stored.filter((s) => s.name === c.name);
    if (rows.length === 0) continue;
    storedRows.push([
      c.name,
      ...SIZES.map((size) => {
        const row = rows.find((r) => r.size === size.label)!;
        return `${formatBytes(row.strlen)} = ${(row.strlen / row.raw).toFixed(2)}x (mem ${formatBytes(row.memory)})`;
      }),
    ]);
  }
  const pages = SIZES.map((s) => makePage(s.bytes));
  storedRows.unshift(['raw page (HTML + RSC)', ...pages.map((p) => `${formatBytes(p.rawBytes)} = 1.00x`)]);
  console.log(markdownTable(['contender', ...SIZES.map((s) => s.label)], storedRows));

  console.log(`\n### Breakdown (ops/s, median of ${BREAKDOWN_ROUNDS} rounds): pieces of one L2 read\n`);
  console.log(
    markdownTable(
      ['operation', ...SIZES.map((s) => s.label)],
      breakdown.map((b) => [b.name, ...SIZES.map((s) => formatNumber(breakdownResults.get(b.name)!.get(s.label)!))]),
    ),
  );

  quietTeardown();
  await Promise.all([oursL2.stack.close(), oursL2Plain.stack.close(), oursL1.stack.close(), oursMemory.stack.close()]);
  await backend.close();
  await forte.close();
  raw.disconnect();
  await nodeRedis.quit();
  await redis.stop();
  // trieb keeps four node-redis clients open and offers no way to close them.
  process.exit(0);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
