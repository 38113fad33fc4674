/**
 * Handler-level `set` of an APP_PAGE entry at 20 KB, 200 KB and 2 MB, concurrency 1, every contender in one run
 * against one local redis-server: the floor (msgpackr pack + one ioredis SET), cachekit-next (defaults, and with
 * `l1: false`), the two peers and Next's built-in cache (its FileSystemCache: files on the local disk). Rounds are
 * interleaved (contender order rotates, see `interleavedRounds`); ops/s is the median round, p50/p99 are over every
 * set of every round. Also: Redis commands per set, and a breakdown of our set into its pieces, each timed alone.
 *
 *   node bench/run.mjs handler-set
 */
import * as zlib from 'node:zlib';
import { Redis } from 'ioredis';
import { MemoryBackend } from '../src/backends/memory.js';
import { RedisBackend } from '../src/backends/redis.js';
import { packValue } from '../src/wire/frame.js';
import { lz4Compressor } from '../src/wire/lz4.js';
import { handlerEntrySerializer, packNextValue, type HandlerEntry } from '../src/wire/next-entry.js';
import type { IncrementalCacheValue } from '../src/wire/next-types.js';
import { startRedis } from '../test/support/servers.js';
import { createOurs } from './ours.js';
import { createForte, createNextBuiltIn, createTrieb, type LegacyHandler } from './peers.js';
import {
  appPageValue,
  floorPackr,
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
  PAGE_TAGS,
  pageSetContext,
  quantile,
  quietTeardown,
  settle,
  type Page,
} from './support.js';

const SIZES = PAGE_SIZES;
const ROUNDS = PAGE_ROUNDS;
const BREAKDOWN_ROUNDS = PAGE_BREAKDOWN_ROUNDS;
const COMMAND_COUNT_SETS = 20;
const KEY = PAGE_KEY;
const GET_CTX = PAGE_GET_CONTEXT;

interface Contender {
  name: string;
  write(page: Page): Promise<void>;
  /** Reads back what the last write stored (from where it stored it), for the check before timing. */
  readBack(): Promise<{ html: string; rscData: Buffer } | null>;
}

function handlerContender(name: string, handler: LegacyHandler, readBack: () => Promise<{ html: string; rscData: Buffer } | null>): Contender {
  return { name, write: (page) => handler.set(KEY, appPageValue(page), pageSetContext()), readBack };
}

/** A read through `handler` (a second handler over the same store, so an L1 cannot answer for the L2). */
const readThrough = (handler: LegacyHandler) => async () =>
  ((await handler.get(KEY, { ...GET_CTX }))?.value as { html: string; rscData: Buffer } | undefined) ?? null;

async function main(): Promise<void> {
  const redis = await startRedis({ args: ['--notify-keyspace-events', 'Exe'] });
  const raw = new Redis({ host: redis.host, port: redis.port });
  const backend = new RedisBackend({ url: redis.url, keyPrefix: 'ck:' });
  const ours = await createOurs(backend);
  const oursNoL1 = await createOurs(backend, { l1: false, keyPrefix: 'cachekit-nol1:' });
  // Readers over the same keys with no L1: what another instance would get from Redis.
  const oursReader = await createOurs(backend, { l1: false });
  const oursNoL1Reader = await createOurs(backend, { l1: false, keyPrefix: 'cachekit-nol1:' });
  // The handler with no network at all (L1 off, in-process L2): its CPU over the pieces.
  const oursMemory = await createOurs(new MemoryBackend(), { l1: false });
  const forte = await createForte(redis.url, 'forte:');
  const trieb = await createTrieb(redis.url, 'trieb:', { redisGetDeduplication: false });
  const next = createNextBuiltIn();

  const FLOOR_KEY = `floor:${KEY}`;
  const contenders: Contender[] = [
    {
      name: 'floor: msgpackr pack + ioredis `set`',
      write: async (page) => void (await raw.set(FLOOR_KEY, floorPackr.pack(appPageValue(page)))),
      readBack: async () => floorPackr.unpack((await raw.getBuffer(FLOOR_KEY))!) as { html: string; rscData: Buffer },
    },
    handlerContender('cachekit-next (defaults: L1 on, LZ4 above 4 KB)', ours.handler, readThrough(oursReader.handler)),
    handlerContender('cachekit-next, `l1: false`', oursNoL1.handler, readThrough(oursNoL1Reader.handler)),
    handlerContender('@fortedigital/nextjs-cache-handler 3.3.0 (redis-strings)', forte.handler, readThrough(forte.handler)),
    handlerContender('@trieb.work/nextjs-turbo-redis-cache 1.18.0', trieb.handler, readThrough(trieb.handler)),
    // Its own get would answer from its memory LRU: a second FileSystemCache cannot (the LRU is a process singleton).
    handlerContender("Next's built-in (FileSystemCache: local disk + 50 MB LRU, not shared)", next.handler, readThrough(next.handler)),
  ];

  // The pieces of our set, each called alone on the page's entry as the handler builds it.
  const serializer = handlerEntrySerializer();
  const lz4 = lz4Compressor();
  if (!lz4) throw new Error('no LZ4 compressor: the default write path would use deflate');
  const crc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;
  let entry: HandlerEntry = { lastModified: 0, tags: [], value: null };
  let payload: Uint8Array = new Uint8Array();
  let compressed: Uint8Array = new Uint8Array();
  let encoded: Uint8Array = new Uint8Array();
  const storeKey = ours.storeKey(KEY);
  const ttl = ours.stack.ttlFor(86_400);
  const breakdown: { name: string; op: () => Promise<unknown> }[] = [
    {
      name: 'entry built + tags parsed from `x-next-cache-tags` (no Redis command: tags travel in the entry)',
      op: async () => ({ lastModified: Date.now(), tags: PAGE_TAGS.split(',').filter(Boolean), value: entry.value }),
    },
    {
      name: 'encode: MessagePack of the entry (`packNextValue` + `packValue`; HTML as UTF-8 bytes)',
      op: async () => packValue({ v: 1, m: 0, t: entry.tags, x: packNextValue(entry.value!) }),
    },
    { name: 'compression: LZ4 of that payload (lz4-napi)', op: async () => lz4(payload) },
    { name: 'CRC-32 of the compressed body (zlib.crc32)', op: async () => crc32?.(compressed) },
    { name: 'whole encode (`handlerEntrySerializer().encode`: MessagePack + LZ4 + CRC + frame copy)', op: async () => serializer.encode(entry) },
    { name: 'Redis write: `RedisBackend.set` of the encoded bytes (SET EX)', op: () => backend.set(storeKey, encoded, ttl) },
    { name: 'the same bytes by ioredis `set` directly', op: () => raw.set(backend.fullKey(storeKey), Buffer.from(encoded), 'EX', ttl) },
    { name: 'invalidation publish (`stack.bus.announceKeys`: PUBLISH)', op: () => ours.stack.bus.announceKeys([storeKey]) },
    {
      name: 'alternative: SET + PUBLISH in one ioredis pipeline (one round trip)',
      op: () => raw.pipeline().set(backend.fullKey(storeKey), Buffer.from(encoded), 'EX', ttl).publish('bench-channel', '{}').exec(),
    },
    {
      name: 'cachekit-next handler set over MemoryBackend (L1 off: encode + bookkeeping, no I/O)',
      op: () => oursMemory.handler.set(KEY, entry.value, pageSetContext()),
    },
  ];

  const loads: number[] = [loadAverage()];
  const results = new Map<string, Map<string, { ops: number; p50: number; p99: number }>>();
  const breakdownResults = new Map<string, Map<string, number>>();
  const commands = new Map<string, Map<string, string>>();

  for (const size of SIZES) {
    const page = makePage(size.bytes);
    for (const contender of contenders) await contender.write(page);
    await settle();
    // Every contender must have stored the page it was given, or its numbers mean nothing.
    for (const contender of contenders) {
      const got = await contender.readBack();
      if (!got || got.html !== page.html || !Buffer.from(got.rscData).equals(page.rscData)) {
        throw new Error(`${contender.name} did not store the ${size.label} page it was given`);
      }
    }
    // Redis commands one set sends (INFO commandstats around a few sets; Next's built-in sends none).
    for (const contender of contenders) {
      await settle();
      await raw.config('RESETSTAT');
      for (let i = 0; i < COMMAND_COUNT_SETS; i++) await contender.write(page);
      await settle();
      const stats = parseCommandStats(await raw.info('commandstats'));
      stats.delete('config');
      stats.delete('info');
      const text = [...stats]
        .filter(([, calls]) => calls >= COMMAND_COUNT_SETS / 2)
        .map(([name, calls]) => `${formatNumber(calls / COMMAND_COUNT_SETS, calls % COMMAND_COUNT_SETS ? 1 : 0)} ${name.toUpperCase()}`)
        .join(' + ');
      if (!commands.has(contender.name)) commands.set(contender.name, new Map());
      commands.get(contender.name)!.set(size.label, text || 'none');
    }

    const timed = contenders.map((c) => ({ name: c.name, op: () => c.write(page) }));
    for (const c of timed) await opsPerSecond(c.op, 100, 3); // warm-up: JIT, connections, directories
    const rounds = await interleavedRounds(timed, ROUNDS, size.ms, () => loads.push(loadAverage()));
    for (const [name, { perRound, latenciesMs }] of rounds) {
      if (!results.has(name)) results.set(name, new Map());
      results.get(name)!.set(size.label, { ops: median(perRound), p50: quantile(latenciesMs, 0.5), p99: quantile(latenciesMs, 0.99) });
    }

    entry = { lastModified: 0, tags: PAGE_TAGS.split(','), value: appPageValue(page) as unknown as IncrementalCacheValue };
    payload = packValue({ v: 1, m: 0, t: entry.tags, x: packNextValue(entry.value!) });
    compressed = lz4(payload);
    encoded = serializer.encode(entry);
    for (const b of breakdown) await opsPerSecond(b.op, 50, 3);
    const breakdownRounds = await interleavedRounds(breakdown, BREAKDOWN_ROUNDS, Math.min(300, size.ms));
    for (const [name, { perRound }] of breakdownRounds) {
      if (!breakdownResults.has(name)) breakdownResults.set(name, new Map());
      breakdownResults.get(name)!.set(size.label, 1e6 / median(perRound));
    }
    console.error(`[handler-set] ${size.label} done (load ${loadAverage().toFixed(2)}; payload ${payload.byteLength} B, stored ${encoded.byteLength} B)`);
  }

  const floorName = contenders[0]!.name;
  const cell = (name: string, label: string) => {
    const r = results.get(name)!.get(label)!;
    const floor = results.get(floorName)!.get(label)!.ops;
    return `${formatNumber(r.ops)} (${formatNumber((r.ops / floor) * 100, 0)}%), p50 ${formatNumber(r.p50)} / p99 ${formatNumber(r.p99)} ms`;
  };
  console.log(
    `\n### Handler-level set of an APP_PAGE entry, ops/s at concurrency 1 (median of ${ROUNDS} interleaved rounds; % of the floor; p50/p99 over every set)\n`,
  );
  console.log(`${machineLine()}; ${loadLine(loads)}\n`);
  console.log(
    markdownTable(
      ['contender', ...SIZES.map((s) => s.label)],
      contenders.map((c) => [c.name, ...SIZES.map((s) => cell(c.name, s.label))]),
    ),
  );

  console.log('\n### Redis commands per set (INFO commandstats over 20 sets)\n');
  console.log(
    markdownTable(
      ['contender', ...SIZES.map((s) => s.label)],
      contenders.map((c) => [c.name, ...SIZES.map((s) => commands.get(c.name)!.get(s.label)!)]),
    ),
  );

  const oursName = contenders[1]!.name;
  console.log(`\n### Breakdown of our set: µs per call of each piece alone (median of ${BREAKDOWN_ROUNDS} rounds), and our whole set for scale\n`);
  const wholeRow = [
    'cachekit-next handler set (defaults), from the table above',
    ...SIZES.map((s) => formatNumber(1e6 / results.get(oursName)!.get(s.label)!.ops)),
  ];
  console.log(
    markdownTable(
      ['piece', ...SIZES.map((s) => `${s.label} (µs)`)],
      [...breakdown.map((b) => [b.name, ...SIZES.map((s) => formatNumber(breakdownResults.get(b.name)!.get(s.label)!))]), wholeRow],
    ),
  );

  quietTeardown();
  await Promise.all([ours.stack.close(), oursNoL1.stack.close(), oursReader.stack.close(), oursNoL1Reader.stack.close(), oursMemory.stack.close()]);
  await backend.close();
  await forte.close();
  raw.disconnect();
  await redis.stop();
  // trieb keeps four node-redis clients open and offers no way to close them.
  process.exit(0);
}

/** `cmdstat_set:calls=3,...` lines -> command name -> calls. */
function parseCommandStats(info: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of info.split('\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (match) out.set(match[1]!, Number(match[2]));
  }
  return out;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
