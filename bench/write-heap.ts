/**
 * Memory over a stream of writes: one fresh child process per contender writes 100,000 distinct ~5 KB APP_PAGE
 * entries (distinct keys, distinct HTML and RSC payloads, a per-page tag, as a site's regenerations do) through the
 * handler as fast as it can at concurrency 8, against one local redis-server. `process.memoryUsage()` is sampled
 * after a `gc()` before the first write and after every 10,000 writes. Contenders: cachekit-next with the default L1
 * budget, with a 16 MB budget, and with no L1 (the process's fixed overhead); both peers as wired in peers.ts; Next's
 * built-in cache (files + its 50 MB LRU).
 *
 *   node bench/run.mjs write-heap          BENCH_WRITES (100000)  BENCH_WRITE_HEAP_ONLY=ours,ours-16mb
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { RedisBackend } from '../src/backends/redis.js';
import { DEFAULT_L1_MAX_SIZE_MB } from '../src/stack/vocabulary.js';
import { startRedis } from '../test/support/servers.js';
import { createOurs, type Ours } from './ours.js';
import { createForte, createNextBuiltIn, createTrieb, NEXT_DEFAULT_MEMORY_CACHE_BYTES, type LegacyHandler } from './peers.js';
import { appPageValue, formatNumber, loadAverage, machineLine, makePage, markdownTable, pageSetContext, quietTeardown, runOrExit } from './support.js';

const WRITES = Number(process.env.BENCH_WRITES ?? 100_000);
const SAMPLE_EVERY = Math.max(1, Math.floor(WRITES / 10));
const CONCURRENCY = 8;
const PAGE_BYTES = 5 * 1024;
/** Distinct source pages; each write makes its own HTML string and RSC buffer from one of them. */
const POOL = 64;
const MB = 1024 * 1024;

interface ContenderSpec {
  id: string;
  name: string;
  /** The in-memory budget the contender is configured with, in bytes (null: none). */
  budgetBytes: number | null;
}

const CONTENDERS: ContenderSpec[] = [
  { id: 'ours', name: `cachekit-next, default L1 (${DEFAULT_L1_MAX_SIZE_MB} MB)`, budgetBytes: DEFAULT_L1_MAX_SIZE_MB * MB },
  { id: 'ours-16mb', name: 'cachekit-next, `l1: { maxSizeMb: 16 }`', budgetBytes: 16 * MB },
  { id: 'ours-no-l1', name: 'cachekit-next, `l1: false`', budgetBytes: 0 },
  { id: 'forte', name: '@fortedigital/nextjs-cache-handler 3.3.0', budgetBytes: null },
  { id: 'trieb', name: '@trieb.work/nextjs-turbo-redis-cache 1.18.0 (defaults)', budgetBytes: null },
  { id: 'next', name: "Next's built-in (FileSystemCache, 50 MB LRU)", budgetBytes: NEXT_DEFAULT_MEMORY_CACHE_BYTES },
];

interface Sample {
  writes: number;
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

interface ChildResult {
  samples: Sample[];
  seconds: number;
  /** Our L1's own account of what it holds (entries, bytes as it counts them). */
  l1?: { entries: number; bytes: number };
}

function sample(writes: number): Sample {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { writes, rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers };
}

async function contenderHandler(id: string, url: string): Promise<{ handler: LegacyHandler; ours?: Ours; close(): Promise<void> }> {
  const oursWith = async (options: Parameters<typeof createOurs>[1]) => {
    const backend = new RedisBackend({ url, keyPrefix: 'ck:' });
    const ours = await createOurs(backend, options);
    return {
      handler: ours.handler,
      ours,
      close: async () => {
        await ours.stack.close();
        await backend.close();
      },
    };
  };
  switch (id) {
    case 'ours':
      return oursWith({});
    case 'ours-16mb':
      return oursWith({ l1: { maxSizeMb: 16 } });
    case 'ours-no-l1':
      return oursWith({ l1: false });
    case 'forte': {
      const forte = await createForte(url, 'forte:');
      return { handler: forte.handler, close: () => forte.close() };
    }
    case 'trieb': {
      const trieb = await createTrieb(url, 'trieb:');
      return { handler: trieb.handler, close: () => trieb.close() };
    }
    case 'next': {
      const next = createNextBuiltIn();
      return {
        handler: next.handler,
        close: async () => rmSync(path.dirname(next.serverDistDir), { recursive: true, force: true }),
      };
    }
    default:
      throw new Error(`unknown contender ${id}`);
  }
}

/** The child: writes WRITES distinct entries at CONCURRENCY, sampling memory every SAMPLE_EVERY writes. */
async function child(id: string, url: string): Promise<void> {
  const pool = Array.from({ length: POOL }, (_, i) => makePage(PAGE_BYTES, 1000 + i));
  const contender = await contenderHandler(id, url);
  // One write first: connections, scripts, directories (a server has written before; not the subject here).
  await contender.handler.set('/p/warm-up', appPageValue(pool[0]!), pageSetContext());
  const samples: Sample[] = [sample(0)];
  const started = performance.now();
  let next = 0;
  const write = async (i: number) => {
    const source = pool[i % POOL]!;
    // A page of its own, as a render produces it: a fresh HTML string and a fresh RSC buffer.
    const page = { html: source.html.replace('data-id="0"', `data-id="${i}"`), rscData: Buffer.from(source.rscData), rawBytes: source.rawBytes };
    const tags = `_N_T_/layout,_N_T_/p/layout,_N_T_/p/[id]/page,_N_T_/p/${i}`;
    await contender.handler.set(`/p/${i}`, appPageValue(page, tags), pageSetContext());
  };
  for (let until = SAMPLE_EVERY; until <= WRITES; until += SAMPLE_EVERY) {
    const worker = async () => {
      while (next < until) await write(next++);
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    samples.push(sample(until));
  }
  const seconds = (performance.now() - started) / 1000;
  const stats = contender.ours?.stack.entries.stats();
  const result: ChildResult = { samples, seconds, ...(stats ? { l1: { entries: stats.l1Entries, bytes: stats.l1Bytes } } : {}) };
  process.stdout.write(`\n${JSON.stringify(result)}\n`);
  quietTeardown();
  await contender.close();
  process.exit(0);
}

async function main(): Promise<void> {
  const only = process.env.BENCH_WRITE_HEAP_ONLY?.split(',');
  const selected = CONTENDERS.filter((c) => !only || only.includes(c.id));
  const redis = await startRedis({ args: ['--notify-keyspace-events', 'Exe'] });
  const raw = new Redis({ host: redis.host, port: redis.port });
  const self = fileURLToPath(import.meta.url);
  const loads = [loadAverage()];
  const results = new Map<string, ChildResult>();
  for (const c of selected) {
    await raw.flushall(); // each contender starts on an empty store
    const out = spawnSync(process.execPath, ['--expose-gc', '--enable-source-maps', self, 'child', c.id, redis.url], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
      env: { ...process.env, NODE_ENV: 'production', NEXT_TELEMETRY_DISABLED: '1' },
    });
    if (out.status !== 0) throw new Error(`child ${c.id} exited with ${out.status}: ${out.stderr.slice(-2000)}`);
    results.set(c.id, JSON.parse(out.stdout.trim().split('\n').pop()!) as ChildResult);
    loads.push(loadAverage());
    console.error(`[write-heap] ${c.id} done in ${results.get(c.id)!.seconds.toFixed(1)} s (load ${loadAverage().toFixed(2)})`);
  }

  const mb = (bytes: number) => formatNumber(bytes / MB, 0);
  console.log(
    `\n### Memory over ${formatNumber(WRITES, 0)} distinct ~5 KB APP_PAGE writes at concurrency ${CONCURRENCY} (MB after gc(), one fresh process each)\n`,
  );
  console.log(
    `${machineLine()}; load average ${loads[0]!.toFixed(2)} at start, ${Math.min(...loads.slice(1)).toFixed(2)}-${Math.max(...loads.slice(1)).toFixed(2)} after each contender\n`,
  );
  console.log(
    markdownTable(
      [
        'contender',
        'budget',
        'writes/s',
        'RSS growth (final - before)',
        'heapTotal growth',
        'heapUsed growth',
        'arrayBuffers growth',
        'L1 as it counts itself',
      ],
      selected.map((c) => {
        const r = results.get(c.id)!;
        const first = r.samples[0]!;
        const last = r.samples.at(-1)!;
        return [
          c.name,
          c.budgetBytes === null ? 'none' : `${mb(c.budgetBytes)} MB`,
          formatNumber(WRITES / r.seconds, 0),
          `${mb(last.rss - first.rss)} MB`,
          `${mb(last.heapTotal - first.heapTotal)} MB`,
          `${mb(last.heapUsed - first.heapUsed)} MB`,
          `${mb(last.arrayBuffers - first.arrayBuffers)} MB`,
          r.l1 ? `${formatNumber(r.l1.entries, 0)} entries, ${mb(r.l1.bytes)} MB` : '',
        ];
      }),
    ),
  );
  console.log('\n### Samples: RSS / heapTotal / heapUsed / arrayBuffers (MB) after every 10% of the writes\n');
  const at = results.get(selected[0]!.id)!.samples.map((s) => s.writes);
  console.log(
    markdownTable(
      ['writes', ...selected.map((c) => c.id)],
      at.map((writes, i) => [
        formatNumber(writes, 0),
        ...selected.map((c) => {
          const s = results.get(c.id)!.samples[i]!;
          return `${mb(s.rss)} / ${mb(s.heapTotal)} / ${mb(s.heapUsed)} / ${mb(s.arrayBuffers)}`;
        }),
      ]),
    ),
  );
  raw.disconnect();
  await redis.stop();
}

runOrExit(() => (process.argv[2] === 'child' ? child(process.argv[3]!, process.argv[4]!) : main()));
