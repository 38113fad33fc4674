/**
 * Concurrent cold reads from Redis, as a server sees them when many pages are requested at once: 32 reads in flight,
 * each of a distinct 5 KB FETCH entry with two tags (one shared by all entries, one its own), nothing in any local
 * layer. Every round reads every key once, through a contender that has read none of them (ours: a new stack, so its
 * tag states are unknown too; trieb: its GET deduplication off). One run, one redis-server, rounds interleaved with the
 * order rotating; median round reported. Throughput and the CPU this process spent per read (user + system), against
 * the floor: one raw ioredis `getBuffer` + MessagePack decode of the same value per read.
 *
 *   node bench/run.mjs l2-concurrent
 */
import { Redis } from 'ioredis';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { RedisBackend } from '../src/backends/redis.js';
import { startRedis } from '../test/support/servers.js';
import { createOurs } from './ours.js';
import { createForte, createTrieb, type LegacyHandler } from './peers.js';
import { floorPackr as packr, formatNumber, loadAverage, loadLine, machineLine, markdownTable, median, quietTeardown, runOrExit, settle } from './support.js';

const KEYS = Number(process.env.BENCH_L2C_KEYS ?? 3_000);
const IN_FLIGHT = 32;
const ROUNDS = Number(process.env.BENCH_L2C_ROUNDS ?? 5);
const BODY = 'x'.repeat(5 * 1024);

const keyOf = (i: number) => `https://api.example.com/items/${i}`;
const tagsOf = (i: number) => ['items', `item-${i}`];
const fetchValue = (i: number) => ({
  kind: 'FETCH',
  data: { headers: { 'content-type': 'application/json' }, body: BODY, status: 200, url: keyOf(i) },
  revalidate: 3600,
  tags: tagsOf(i),
});
const getCtx = (i: number) => ({ kind: 'FETCH', fetchCache: true, revalidate: 3600, tags: tagsOf(i), softTags: ['_N_T_/layout', '_N_T_/items/page'] });
const setCtx = (i: number) => ({ fetchCache: true, revalidate: 3600, tags: tagsOf(i) });

interface Contender {
  name: string;
  /** A reader that has read none of the keys (called once per round, outside the timing). */
  fresh(): Promise<(i: number) => Promise<boolean>>;
}

/** Every key read once with IN_FLIGHT reads at a time: reads per second and CPU µs per read. */
async function round(read: (i: number) => Promise<boolean>): Promise<{ perSecond: number; cpuMicros: number }> {
  let next = 0;
  let missing = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < KEYS) if (!(await read(next++))) missing++;
    }),
  );
  const ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  if (missing > 0) throw new Error(`${missing} of ${KEYS} reads missed: the contender is not reading what was written`);
  return { perSecond: (KEYS / ms) * 1000, cpuMicros: (used.user + used.system) / KEYS };
}

const handlerReader = (handler: () => LegacyHandler) => async (i: number) => (await handler().get(keyOf(i), getCtx(i)))?.value != null;

async function main(): Promise<void> {
  const loads = [loadAverage()];
  const redis = await startRedis({ args: ['--notify-keyspace-events', 'Exe'] }); // trieb requires keyspace events
  const raw = new Redis({ host: redis.host, port: redis.port });
  const backend = new RedisBackend({ url: redis.url, keyPrefix: 'ck:' });
  const forte = await createForte(redis.url, 'forte:');
  const trieb = await createTrieb(redis.url, 'trieb:', { redisGetDeduplication: false });
  const writer = await createOurs(backend, { l1: false });

  for (let i = 0; i < KEYS; i += 100) {
    const batch = Array.from({ length: Math.min(100, KEYS - i) }, (_, j) => i + j);
    await Promise.all(
      batch.flatMap((k) => [
        raw.set(`raw:${keyOf(k)}`, packr.pack(fetchValue(k))),
        writer.handler.set(keyOf(k), fetchValue(k), setCtx(k)),
        forte.handler.set(keyOf(k), fetchValue(k), setCtx(k)),
        trieb.handler.set(keyOf(k), fetchValue(k), setCtx(k)),
      ]),
    );
  }
  await settle();

  const contenders: Contender[] = [
    {
      name: 'raw ioredis getBuffer + unpack (floor)',
      fresh: async () => async (i) => {
        const bytes = await raw.getBuffer(`raw:${keyOf(i)}`);
        return bytes !== null && (packr.unpack(bytes) as { kind: string }).kind === 'FETCH';
      },
    },
    {
      name: 'cachekit-next (L1 off, new stack)',
      fresh: async () => {
        const ours = await createOurs(backend, { l1: false });
        return handlerReader(ours.request);
      },
    },
    { name: '@fortedigital 3.3 (redis-strings)', fresh: async () => handlerReader(() => forte.handler) },
    { name: '@trieb.work 1.18 (deduplication off)', fresh: async () => handlerReader(() => trieb.handler) },
  ];

  const results = new Map(contenders.map((c) => [c.name, { perSecond: [] as number[], cpuMicros: [] as number[] }]));
  for (let r = 0; r < ROUNDS; r++) {
    const shift = r % contenders.length;
    for (const contender of [...contenders.slice(shift), ...contenders.slice(0, shift)]) {
      const read = await contender.fresh();
      await settle({ gc: true });
      const measured = await round(read);
      results.get(contender.name)!.perSecond.push(measured.perSecond);
      results.get(contender.name)!.cpuMicros.push(measured.cpuMicros);
    }
    loads.push(loadAverage());
  }

  const floor = results.get(contenders[0]!.name)!;
  const rows = contenders.map((c) => {
    const m = results.get(c.name)!;
    return [
      c.name,
      formatNumber(median(m.perSecond)),
      `${formatNumber(median(m.perSecond) / median(floor.perSecond))}x`,
      formatNumber(median(m.cpuMicros)),
      `${formatNumber(median(m.cpuMicros) / median(floor.cpuMicros))}x`,
    ];
  });
  const report = [
    `## l2-concurrent: ${KEYS} distinct 5 KB FETCH entries read once per round, ${IN_FLIGHT} in flight (${machineLine()})`,
    '',
    `${ROUNDS} rounds, interleaved; medians. ${loadLine(loads)}.`,
    '',
    markdownTable(['contender', 'reads/s', 'x floor', 'CPU µs per read', 'CPU x floor'], rows),
  ];
  console.log(report.join('\n'));
  if (KEYS === 3_000 && ROUNDS === 5) {
    const dir = path.join(process.cwd(), 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `l2-concurrent-${new Date().toISOString().slice(0, 10)}.md`), `${report.join('\n')}\n`);
  }
  quietTeardown();
  raw.disconnect();
  await backend.close();
  await forte.close();
  await redis.stop();
  process.exit(0);
}

runOrExit(main);
