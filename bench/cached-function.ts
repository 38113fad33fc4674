/**
 * `cache(fn)` hits, per call, at concurrency 1, against one local redis-server, every contender in one run: the floor
 * (one raw ioredis GET of the same value + msgpackr unpack), `cache(fn)` from Redis with no L1 (plain, `cache.secure`,
 * interop mode) and from its L1 (plain and secure: the secure L1 keeps ciphertext, so every hit decrypts). Values: a
 * 2 KB product record and a 64 KB product list. Rounds are interleaved and the median round is reported; the CPU time
 * of this process per call (client side only: the redis-server's is not counted) moves less than wall time on a
 * machine shared with other work.
 *
 *   node bench/run.mjs cached-function
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { Packr } from 'msgpackr';
import { RedisBackend } from '../src/backends/redis.js';
import { cache } from '../src/loaders/cache.js';
import type { CachedFunction } from '../src/loaders/types.js';
import { startRedis } from '../test/support/servers.js';
import { formatNumber, loadAverage, loadLine, machineLine, markdownTable, median, opsPerSecond, prng, product, quietTeardown, settle } from './support.js';

const ROUNDS = 5;
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, variableMapSize: true });

const VALUES = [
  { label: '2 KB record', make: () => product(prng(1), 1) },
  { label: '64 KB list', make: () => Array.from({ length: 32 }, (_, i) => product(prng(100 + i), i)) },
];

interface Contender {
  name: string;
  read(): Promise<unknown>;
}

async function main(): Promise<void> {
  const redis = await startRedis();
  const raw = new Redis({ host: redis.host, port: redis.port });
  const backend = new RedisBackend({ url: redis.url });
  const masterKey = randomBytes(32).toString('hex');
  const loads = [loadAverage()];
  const tables: string[] = [];

  for (const [n, { label, make }] of VALUES.entries()) {
    const value = make();
    const bytes = packr.pack(value);
    await raw.set('floor', bytes);
    const fns: Record<string, CachedFunction<[number], unknown>> = {
      l2: cache(
        async function load(_id: number) {
          return value;
        },
        { backend, l1: false, ttl: 3600, namespace: `bench${n}` },
      ),
      l2secure: cache.secure(
        async function load(_id: number) {
          return value;
        },
        { backend, l1: false, ttl: 3600, namespace: `bench-secure${n}`, encryption: { masterKey } },
      ),
      l2interop: cache(async (_id: number) => value, { backend, l1: false, ttl: 3600, interop: { namespace: `bench${n}`, operation: 'load' } }),
      l1: cache(
        async function load(_id: number) {
          return value;
        },
        { backend, ttl: 3600, namespace: `bench-l1${n}` },
      ),
      l1secure: cache.secure(
        async function load(_id: number) {
          return value;
        },
        { backend, ttl: 3600, namespace: `bench-l1-secure${n}`, encryption: { masterKey } },
      ),
    };
    for (const fn of Object.values(fns)) await fn(1);
    const storedSizes = Object.fromEntries(
      await Promise.all(Object.entries(fns).map(async ([name, fn]) => [name, (await raw.getBuffer(fn.keyFor(1)))!.length] as const)),
    );
    const contenders: Contender[] = [
      { name: 'floor: ioredis getBuffer + msgpackr unpack', read: async () => packr.unpack((await raw.getBuffer('floor'))!) },
      { name: 'cache(fn), L2 hit (Redis)', read: () => fns.l2!(1) },
      { name: 'cache.secure, L2 hit (Redis, decrypt)', read: () => fns.l2secure!(1) },
      { name: 'cache(fn, { interop }), L2 hit (Redis)', read: () => fns.l2interop!(1) },
      { name: 'cache(fn), L1 hit', read: () => fns.l1!(1) },
      { name: 'cache.secure, L1 hit (ciphertext: decrypts each call)', read: () => fns.l1secure!(1) },
    ];
    const results = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
    const cpu = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      // Rotate the order so no contender always runs first (warm caches, GC debt).
      for (let i = 0; i < contenders.length; i++) {
        const contender = contenders[(i + round) % contenders.length]!;
        await settle({ gc: true });
        let calls = 0;
        const before = process.cpuUsage();
        results.get(contender.name)!.push(
          await opsPerSecond(
            () => {
              calls++;
              return contender.read();
            },
            contender.name.includes('L1') ? 150 : 300,
            50,
          ),
        );
        const used = process.cpuUsage(before);
        cpu.get(contender.name)!.push((used.user + used.system) / calls);
        loads.push(loadAverage());
      }
    }
    const floor = median(results.get(contenders[0]!.name)!);
    tables.push(
      `${label} (MessagePack ${bytes.length} bytes; stored: plain ${storedSizes.l2} B, secure ${storedSizes.l2secure} B, interop ${storedSizes.l2interop} B)\n\n` +
        markdownTable(
          ['contender', 'ops/s', 'µs per call', 'of floor', 'CPU µs per call'],
          contenders.map((c) => {
            const ops = median(results.get(c.name)!);
            return [c.name, formatNumber(ops), formatNumber(1e6 / ops), `${Math.round((ops / floor) * 100)}%`, formatNumber(median(cpu.get(c.name)!))];
          }),
        ),
    );
  }
  console.log(`\n## cache(fn) hits, concurrency 1\n\n${machineLine()}; ${loadLine(loads)}\n`);
  console.log(tables.join('\n\n'));
  quietTeardown();
  raw.disconnect();
  await backend.close();
  await redis.stop();
}

await main();
