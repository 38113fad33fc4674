/**
 * A cache(fn) L2 hit over the File backend as a page sees it (issue 14): the demo page's three loaders (one tagged,
 * one with a path, one plain), called concurrently per "request" (requestBegan(), as Next's handler construction
 * signals it), in a fresh process that reads entries another process wrote. Each request reads keys this process
 * never read (an argument per request), so every call is an L2 hit; beside it, FileBackend.get alone on the same
 * files. Request 0 is the process's first (cold: backend, envelope, epoch baseline); the table is over the others.
 *
 *   npm run bench -- file-l2-hit        BENCH_FILE_REQUESTS (200)  BENCH_FILE_TRACE=1 (the file calls of requests 0 and 100)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, utimesSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileBackend } from '../src/backends/file.js';
import { entryName } from '../src/backends/file-format.js';
import { cache } from '../src/loaders/cache.js';
import { CacheStack } from '../src/stack/stack.js';
import { requestBegan } from '../src/store/epoch.js';
import { loadAverage, machineLine, markdownTable, median, quantile } from './support.js';

const REQUESTS = Number(process.env.BENCH_FILE_REQUESTS ?? 200);
const [role, dir] = process.argv.slice(2);

function loadersOver(stack: CacheStack) {
  const value = (i: number) => ({ products: 100 + i, generatedAt: new Date(0).toISOString(), list: Array.from({ length: 20 }, (_, j) => `p${j}`) });
  return {
    catalog: cache(async (i: number) => value(i), { name: 'catalog', ttl: 300, tags: ['catalog'], stack }),
    weather: cache(async (i: number) => value(i), { name: 'weather', ttl: 300, paths: ['/'], stack }),
    rates: cache(async (i: number) => value(i), { name: 'rates', ttl: 20, staleTtl: 40, stack }),
  };
}

function stackOver(backend: FileBackend): CacheStack {
  return new CacheStack({ backend, namespace: 'bench-file', deploymentId: 'b1' });
}

if (role === 'write') {
  const stack = stackOver(new FileBackend({ cacheDir: dir! }));
  const loaders = loadersOver(stack);
  // Values 0..REQUESTS for the page's requests, then REQUESTS more for each loader called alone.
  for (let i = 0; i <= 2 * REQUESTS; i++) await Promise.all(Object.values(loaders).map((load) => load(i)));
  await stack.close();
  process.exit(0);
}

if (role === 'read') {
  const backend = new FileBackend({ cacheDir: dir! });
  const trace = process.env.BENCH_FILE_TRACE === '1';
  const log: string[] = [];
  let requestStart = 0;
  let request = 0;
  if (trace) {
    for (const method of ['get', 'getMany', 'getWithTtl', 'incr', 'set', 'acquireLock'] as const) {
      const original = (backend[method] as (...args: unknown[]) => Promise<unknown>).bind(backend);
      (backend as unknown as Record<string, unknown>)[method] = async (...args: unknown[]) => {
        const t0 = performance.now() - requestStart;
        try {
          return await original(...args);
        } finally {
          if (request === 0 || request === 100) {
            const what = Array.isArray(args[0]) ? `${args[0].length} keys: ${args[0][0]}` : String(args[0]);
            log.push(`req${request} ${method} ${t0.toFixed(2)} -> ${(performance.now() - requestStart).toFixed(2)} ms  ${what}`);
          }
        }
      };
    }
  }
  const stack = stackOver(backend);
  const loaders = loadersOver(stack);
  const names = Object.keys(loaders) as (keyof typeof loaders)[];
  const perLoader = new Map<string, number[]>(names.map((name) => [name, []]));
  const pageMs: number[] = [];
  const statuses = new Set<string>();
  let first = '';
  for (let i = 0; i <= REQUESTS; i++) {
    request = i;
    requestBegan();
    requestStart = performance.now();
    const results = await Promise.all(names.map((name) => loaders[name].detailed(i)));
    const ms = performance.now() - requestStart;
    if (i === 0) {
      first = results.map((r, j) => `${names[j]} ${r.status} ${r.ms.toFixed(2)} ms`).join(', ');
      continue;
    }
    pageMs.push(ms);
    results.forEach((r, j) => {
      statuses.add(r.status);
      perLoader.get(names[j]!)!.push(r.ms);
    });
  }
  // The backend's own read of the same files (a second instance: its own counters, same page cache).
  // One loader per request, alone: what a call adds to the backend's read when nothing else runs beside it.
  const alone = new Map<string, number[]>();
  for (const name of ['catalog', 'rates'] as const) {
    const ms: number[] = [];
    for (let i = REQUESTS + 1; i <= 2 * REQUESTS; i++) {
      requestBegan();
      const result = await loaders[name].detailed(i);
      statuses.add(result.status);
      ms.push(result.ms);
    }
    alone.set(name, ms);
  }
  // First with the mtimes the loaders' reads found (older than a second: the read refreshes it, file-entries.ts #touch),
  // then again (refreshed just now: no metadata write).
  const plain = new FileBackend({ cacheDir: dir! });
  const old = (Date.now() - 60_000) / 1000;
  for (let i = 1; i <= REQUESTS; i++) utimesSync(path.join(dir!, entryName(loaders.catalog.keyFor(i))), old, old);
  const timedGets = async () => {
    const ms: number[] = [];
    for (let i = 1; i <= REQUESTS; i++) {
      const t0 = performance.now();
      await plain.get(loaders.catalog.keyFor(i));
      ms.push(performance.now() - t0);
    }
    return ms;
  };
  const touchMs = await timedGets();
  const getMs = await timedGets();
  const row = (label: string, xs: number[]) => [label, median(xs).toFixed(3), quantile(xs, 0.9).toFixed(3)];
  console.log(`first request (cold process): ${first}`);
  console.log(`statuses after it: ${[...statuses].join(', ')}`);
  if (statuses.size !== 1 || !statuses.has('l2')) console.log('NOT ALL L2 HITS: the figures below are not what they say');
  console.log(
    markdownTable(
      ['', 'median ms', 'p90 ms'],
      [
        ...names.map((name) => row(`cache(fn).detailed ${name} (L2 hit, 3 concurrent)`, perLoader.get(name)!)),
        row('the 3 loaders together (Promise.all)', pageMs),
        row('cache(fn).detailed catalog alone (L2 hit, tagged)', alone.get('catalog')!),
        row('cache(fn).detailed rates alone (L2 hit)', alone.get('rates')!),
        row('FileBackend.get alone, same files, mtime older than 1 s (refreshed)', touchMs),
        row('FileBackend.get alone, same files, mtime recent', getMs),
      ],
    ),
  );
  if (trace) console.log(log.join('\n'));
  await stack.close();
  process.exit(0);
}

// Driver: a writer process, then a fresh reader process.
const self = fileURLToPath(import.meta.url);
const cacheDir = mkdtempSync(path.join(os.tmpdir(), 'bench-file-l2-'));
try {
  const run = (which: string) => {
    const result = spawnSync(process.execPath, [...process.execArgv, self, which, cacheDir], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`${which} exited with ${result.status}`);
    return result.stdout;
  };
  run('write');
  console.log(`## File backend: cache(fn) L2 hit vs FileBackend.get (${REQUESTS} requests)\n\n${machineLine()}, load ${loadAverage()}\n`);
  console.log(run('read'));
} finally {
  rmSync(cacheDir, { recursive: true, force: true });
}
