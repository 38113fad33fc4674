/**
 * End to end: real `next build` + `next start` of the bench apps (bench/e2e/apps), under autocannon, for
 * cachekit-next, @fortedigital/nextjs-cache-handler 3.3, @trieb.work/nextjs-turbo-redis-cache 1.18 and Next's built-in
 * cache, and the floor of any custom handler (a Map in the process), each contender on its own local redis-server. `npm run bench -- e2e`; results go to
 * bench/results/e2e-<date>.{json,md} and bench/results/e2e.svg. Not part of the test command.
 *
 * Per contender: one hot ISR page on 1 instance, then on 2 instances on one store; the stampede (a hard revalidateTag
 * on A, then 200 concurrent requests over A and B, counting origin calls); 2,000 ISR pages requested with a Zipf
 * distribution on a fresh instance after another instance filled the store; a 'use cache' page on 1 instance.
 * Every server is primed with one render (RENDERED_ONCE) and a short unmeasured run before a measurement. The contenders' servers run
 * side by side and are measured in BENCH_E2E_ROUNDS interleaved slices, so the shared machine's load hits all alike.
 *
 *   BENCH_E2E_SECONDS (6)  seconds per measured cell (over all rounds)   BENCH_E2E_CONNECTIONS (32)  per server
 *   BENCH_E2E_ONLY=cachekit,next                          contenders to run (default: all)
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startRedis } from '../../test/support/servers.js';
import { burst, fill, type LoadOptions, type LoadResult, load, zipf } from './load.js';
import { type Cell, type Results, type StampedeCell, writeResults } from './report.js';
import { buildApp, freshDistDir, installApps, ROOT, removeDistDir, type Server, startOrigin, startServer, versionOf } from './servers.js';

const SECONDS = Number(process.env.BENCH_E2E_SECONDS ?? 6);
const CONNECTIONS = Number(process.env.BENCH_E2E_CONNECTIONS ?? 32);
const ROUNDS = Number(process.env.BENCH_E2E_ROUNDS ?? 3);
const PAGES = 2000;
// `map`: the floor of any custom cacheHandler (apps/isr/map-handler.mjs: a Map, no I/O, not shared). Next spends more
// per request on a custom handler than on its built-in cache (it imports the handler module and builds an
// IncrementalCache on every request), so a handler's cost is its distance from this floor, not from the built-in.
const ALL = ['next', 'map', 'cachekit', 'forte', 'trieb'];
// Opt-in (BENCH_E2E_ONLY=next,cachekit,cachekit-unmerged): cachekit-next with `mergeRequests: false`, on the hot page.
const HOT_ONLY = new Set(['map', 'cachekit-unmerged']);
const CONTENDERS = process.env.BENCH_E2E_ONLY ? process.env.BENCH_E2E_ONLY.split(',') : ALL;
const USE_CACHE = new Set(['next', 'cachekit', 'trieb']); // forte 3.3 does not support cacheHandlers ('use cache')
const SCENARIOS = {
  'isr-hot-1': 'hot ISR page, 1 instance',
  'isr-hot-2': 'hot ISR page, 2 instances',
  'isr-many-1': '2,000 ISR pages (Zipf), 1 instance',
  'uc-1': "'use cache' page, 1 instance",
};

const log = (line: string) => console.log(line);
const loadStart = os.loadavg();
const startedAt = performance.now();

await installApps(['isr', 'uc'], log);
const origin = await startOrigin();
const builds: Record<string, string> = {};
for (const app of ['isr', 'uc']) {
  const build = await buildApp(app, { BENCH_ORIGIN_URL: origin.url });
  builds[app] = build.distDir;
  log(`[e2e] ${app}: ${build.built ? `built in ${(build.ms / 1000).toFixed(0)} s` : 'build up to date'}`);
}

/** A contender's own redis-server (so all can run at once), its env and its copy of the build. */
interface Fleet {
  contender: string;
  redis: Awaited<ReturnType<typeof startRedis>>;
  env: NodeJS.ProcessEnv;
  dist: string;
  servers: Server[];
}

async function fleetOf(contender: string, app: string): Promise<Fleet> {
  const redis = await startRedis({ args: ['--notify-keyspace-events', 'Exe'] }); // trieb requires keyspace events
  const env: NodeJS.ProcessEnv = { BENCH_ORIGIN_URL: origin.url };
  if (contender === 'cachekit') Object.assign(env, { BENCH_HANDLER: 'cachekit', CACHEKIT_REDIS_URL: redis.url });
  if (contender === 'map') Object.assign(env, { BENCH_HANDLER: 'map' });
  if (contender === 'cachekit-unmerged')
    Object.assign(env, { BENCH_HANDLER: 'cachekit', CACHEKIT_REDIS_URL: redis.url, CACHEKIT_NEXT_OPTIONS: JSON.stringify({ mergeRequests: false }) });
  if (contender === 'forte') Object.assign(env, { BENCH_HANDLER: 'forte', REDIS_URL: redis.url });
  if (contender === 'trieb') Object.assign(env, { BENCH_HANDLER: 'trieb', REDIS_URL: redis.url, VERCEL_ENV: 'production' });
  return { contender, redis, env, dist: freshDistDir(app, builds[app]!, contender), servers: [] };
}

async function closeFleet(fleet: Fleet, app: string): Promise<void> {
  await Promise.all(fleet.servers.map((server) => server.stop()));
  await fleet.redis.stop();
  removeDistDir(app, fleet.dist);
}

async function get(server: Server, pathname: string): Promise<void> {
  const res = await fetch(server.url + pathname);
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`GET ${pathname}: ${res.status}\n${server.log().slice(-2000)}`);
}

/**
 * An ISR page no build prerenders: its first request renders it in every contender's server. A server that served
 * only prerendered files never ran a render, and Next's first render changes the whole process: AsyncLocalStorage's
 * promise hooks are on from then (about 900 hook calls per request here, bench/e2e/profile.ts shows them as
 * `_propagate` and `promiseInitHook`). Servers that regenerate pages (any
 * ISR site, sooner or later) live in that state; the bench measures every contender in it, not only those that
 * happened to render at startup (cachekit, forte and trieb start on an empty store, Next's built-in from its build).
 */
const RENDERED_ONCE = '/p/100000';

/** One render of each path, then a short unmeasured run: the JIT and the caches are warm before measuring. */
async function prime(servers: readonly Server[], paths: readonly string[], warm: LoadOptions['path'] | undefined): Promise<void> {
  for (const server of servers) for (const p of paths) await get(server, p);
  if (warm) await load(servers, { connections: CONNECTIONS, seconds: 1, path: warm });
}

const cells: Cell[] = [];
const stampede: StampedeCell[] = [];

/**
 * Measures every contender of a scenario in ROUNDS interleaved slices (the order rotates each round), so a change of
 * the machine's load (it is shared) hits every contender alike; the cell is the round with the median req/s.
 */
async function measure(
  scenario: keyof typeof SCENARIOS,
  fleets: readonly Fleet[],
  servers: (fleet: Fleet) => Server[],
  pathOf: (fleet: Fleet) => LoadOptions['path'],
) {
  const rounds = new Map<Fleet, LoadResult[]>(fleets.map((fleet) => [fleet, []]));
  const paths = new Map(fleets.map((fleet) => [fleet, pathOf(fleet)]));
  const seconds = Math.max(1, Math.round(SECONDS / ROUNDS));
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < fleets.length; i++) {
      const fleet = fleets[(i + round) % fleets.length]!;
      rounds.get(fleet)!.push(await load(servers(fleet), { connections: CONNECTIONS, seconds, path: paths.get(fleet)! }));
    }
  }
  for (const fleet of fleets) {
    const results = [...rounds.get(fleet)!].sort((a, b) => a.reqPerSec - b.reqPerSec);
    const result = results[Math.floor(results.length / 2)]!;
    const failures = results.reduce((sum, r) => sum + r.failures, 0);
    cells.push({ scenario, contender: fleet.contender, ...result, failures, roundsReqPerSec: rounds.get(fleet)!.map((r) => Math.round(r.reqPerSec)) });
    log(
      `[e2e] ${SCENARIOS[scenario]}, ${fleet.contender}: ${result.reqPerSec.toFixed(0)} req/s (rounds ${rounds
        .get(fleet)!
        .map((r) => r.reqPerSec.toFixed(0))
        .join(', ')}), p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, ${result.cpuMsPerRequest.toFixed(2)} ms CPU/req, ` +
        `RSS ${(result.rssBytes / 2 ** 20).toFixed(0)} MB, ${failures} failed`,
    );
  }
}

// ISR: every contender's instance A at once (own redis-server each), then B, measured in interleaved rounds.
const isr: Fleet[] = [];
try {
  for (const contender of CONTENDERS) isr.push(await fleetOf(contender, 'isr'));
  for (const fleet of isr) {
    fleet.servers.push(await startServer('isr', fleet.dist, fleet.env));
    await prime(fleet.servers, [RENDERED_ONCE, '/hot', '/stampede'], '/hot');
  }
  await measure(
    'isr-hot-1',
    isr,
    (fleet) => [fleet.servers[0]!],
    () => '/hot',
  );
  for (const fleet of isr) {
    fleet.servers.push(await startServer('isr', fleet.dist, fleet.env));
    await prime([fleet.servers[1]!], [RENDERED_ONCE, '/hot', '/stampede'], '/hot');
  }
  await measure(
    'isr-hot-2',
    isr,
    (fleet) => fleet.servers.slice(0, 2),
    () => '/hot',
  );

  // The floor ends here: not shared, it has no stampede to stop, and a fresh instance of it holds none of the pages.
  // (So does the opt-in cachekit-unmerged: what it shows is the hot page.)
  for (const fleet of isr.filter((f) => HOT_ONLY.has(f.contender))) await closeFleet(fleet, 'isr');
  isr.splice(0, isr.length, ...isr.filter((f) => !HOT_ONLY.has(f.contender)));
  for (const fleet of isr) {
    // The stampede: both servers have the page, a hard revalidateTag on A, then 200 requests at once over A and B.
    const [a, b] = fleet.servers as [Server, Server];
    await get(a, '/stampede');
    await get(b, '/stampede');
    const before = origin.count('/stampede');
    const res = await fetch(`${a.url}/api/revalidate?tag=stampede`, { method: 'POST' });
    if (res.status !== 200) throw new Error(`revalidate: ${res.status}`);
    const result = await burst([a, b], '/stampede', 200, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 2_000)); // background regenerations land too
    const originCalls = origin.count('/stampede') - before;
    stampede.push({ contender: fleet.contender, instances: 2, originCalls, ...result });
    log(`[e2e] stampede, ${fleet.contender}: ${originCalls} origin calls, ${result.failures} failed, slowest ${result.maxMs.toFixed(0)} ms`);
    await b.stop();

    // Many pages: A fills the store (and Next's dist dir); a fresh instance C serves them (L1 misses, L2 reads, merging).
    await fill(
      a,
      Array.from({ length: PAGES }, (_, i) => `/p/${i + 1}`),
      8,
    );
    await a.stop();
    fleet.servers = [await startServer('isr', fleet.dist, fleet.env)];
    await prime(fleet.servers, [RENDERED_ONCE, '/hot', '/p/1'], undefined);
  }
  // The same Zipf sequence for every contender.
  await measure(
    'isr-many-1',
    isr,
    (fleet) => fleet.servers,
    () => {
      const page = zipf(PAGES, 1, 7);
      return () => `/p/${page()}`;
    },
  );
} finally {
  for (const fleet of isr) await closeFleet(fleet, 'isr');
}

const uc: Fleet[] = [];
try {
  for (const contender of CONTENDERS.filter((c) => USE_CACHE.has(c))) uc.push(await fleetOf(contender, 'uc'));
  for (const fleet of uc) {
    fleet.servers.push(await startServer('uc', fleet.dist, fleet.env));
    await prime(fleet.servers, ['/uc', '/uc'], '/uc');
  }
  await measure(
    'uc-1',
    uc,
    (fleet) => fleet.servers,
    () => '/uc',
  );
} finally {
  for (const fleet of uc) await closeFleet(fleet, 'uc');
}

const results: Results = {
  name: 'e2e',
  date: new Date().toISOString().slice(0, 10),
  machine: {
    cpus: os.cpus().length,
    model: os.cpus()[0]?.model ?? 'unknown',
    node: process.version,
    loadAverage: { start: loadStart.map((l) => Number(l.toFixed(2))), end: os.loadavg().map((l) => Number(l.toFixed(2))) },
    commit: process.env.BENCH_COMMIT ?? 'unknown',
  },
  versions: Object.fromEntries(
    ['next', 'react', 'cachekit-next', '@fortedigital/nextjs-cache-handler', '@trieb.work/nextjs-turbo-redis-cache', 'autocannon'].map((pkg) => [
      pkg,
      pkg === 'autocannon' ? versionOfRoot(pkg) : versionOf('isr', pkg),
    ]),
  ),
  settings: { seconds: SECONDS, rounds: ROUNDS, connections: CONNECTIONS, pages: PAGES, zipfExponent: 1, stampedeRequests: 200 },
  scenarios: SCENARIOS,
  contenders: CONTENDERS,
  cells,
  stampede,
};
for (const file of writeResults(path.join(ROOT, 'bench', 'results'), results)) log(`[e2e] wrote ${path.relative(ROOT, file)}`);
log(`[e2e] done in ${((performance.now() - startedAt) / 1000).toFixed(0)} s`);

await origin.stop();

function versionOfRoot(pkg: string): string {
  return (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
}
