/**
 * End to end: real `next build` + `next start` of the bench apps (bench/e2e/apps), under autocannon, for
 * cachekit-next, @fortedigital/nextjs-cache-handler 3.3, @trieb.work/nextjs-turbo-redis-cache 1.18 and Next's built-in
 * cache, all on one local redis-server (flushed between contenders). `npm run bench -- e2e`; results go to
 * bench/results/e2e-<date>.{json,md} and bench/results/e2e.svg. Not part of the test command.
 *
 * Per contender: one hot ISR page on 1 instance, then on 2 instances on one store; the stampede (a hard revalidateTag
 * on A, then 200 concurrent requests over A and B, counting origin calls); 2,000 ISR pages requested with a Zipf
 * distribution on a fresh instance after another instance filled the store; a 'use cache' page on 1 instance.
 * Every server is primed with one render and a short unmeasured run before a measurement.
 *
 *   BENCH_E2E_SECONDS (6)  seconds per measured cell     BENCH_E2E_CONNECTIONS (32)  per server
 *   BENCH_E2E_ONLY=cachekit,next                          contenders to run (default: all)
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { startRedis } from '../../test/support/servers.js';
import { burst, fill, type LoadOptions, load, zipf } from './load.js';
import { type Cell, type Results, type StampedeCell, writeResults } from './report.js';
import { buildApp, freshDistDir, installApps, ROOT, removeDistDir, type Server, startOrigin, startServer, versionOf } from './servers.js';

const SECONDS = Number(process.env.BENCH_E2E_SECONDS ?? 6);
const CONNECTIONS = Number(process.env.BENCH_E2E_CONNECTIONS ?? 32);
const PAGES = 2000;
const ALL = ['next', 'cachekit', 'forte', 'trieb'];
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
const redis = await startRedis({ args: ['--notify-keyspace-events', 'Exe'] }); // trieb requires keyspace events
const client = new Redis(redis.url);
const origin = await startOrigin();
const builds: Record<string, string> = {};
for (const app of ['isr', 'uc']) {
  const build = await buildApp(app, { BENCH_ORIGIN_URL: origin.url });
  builds[app] = build.distDir;
  log(`[e2e] ${app}: ${build.built ? `built in ${(build.ms / 1000).toFixed(0)} s` : 'build up to date'}`);
}

function envOf(contender: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { BENCH_ORIGIN_URL: origin.url };
  if (contender === 'cachekit') Object.assign(env, { BENCH_HANDLER: 'cachekit', CACHEKIT_REDIS_URL: redis.url });
  if (contender === 'forte') Object.assign(env, { BENCH_HANDLER: 'forte', REDIS_URL: redis.url });
  if (contender === 'trieb') Object.assign(env, { BENCH_HANDLER: 'trieb', REDIS_URL: redis.url, VERCEL_ENV: 'production' });
  return env;
}

async function get(server: Server, pathname: string): Promise<void> {
  const res = await fetch(server.url + pathname);
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`GET ${pathname}: ${res.status}\n${server.log().slice(-2000)}`);
}

/** One render of each path, then a short unmeasured run: the JIT and the caches are warm before measuring. */
async function prime(servers: readonly Server[], paths: readonly string[], warm: LoadOptions['path']): Promise<void> {
  for (const server of servers) for (const p of paths) await get(server, p);
  await load(servers, { connections: CONNECTIONS, seconds: 1, path: warm });
}

const cells: Cell[] = [];
const stampede: StampedeCell[] = [];
async function measure(scenario: keyof typeof SCENARIOS, contender: string, servers: readonly Server[], pathOf: LoadOptions['path']) {
  const result = await load(servers, { connections: CONNECTIONS, seconds: SECONDS, path: pathOf });
  cells.push({ scenario, contender, ...result });
  log(
    `[e2e] ${SCENARIOS[scenario]}, ${contender}: ${result.reqPerSec.toFixed(0)} req/s, p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, ` +
      `${result.cpuMsPerRequest.toFixed(2)} ms CPU/req, RSS ${(result.rssBytes / 2 ** 20).toFixed(0)} MB, ${result.failures} failed`,
  );
}

for (const contender of CONTENDERS) {
  await client.flushall();
  const dist = freshDistDir('isr', builds.isr!, contender);
  const env = envOf(contender);
  const a = await startServer('isr', dist, env);
  let b: Server | undefined;
  let c: Server | undefined;
  try {
    await prime([a], ['/hot', '/stampede'], '/hot');
    await measure('isr-hot-1', contender, [a], '/hot');
    b = await startServer('isr', dist, env);
    await prime([b], ['/hot', '/stampede'], '/hot');
    await measure('isr-hot-2', contender, [a, b], '/hot');

    // The stampede: every server has the page, a hard revalidateTag on A, then 200 requests at once over A and B.
    await get(a, '/stampede');
    await get(b, '/stampede');
    const before = origin.count('/stampede');
    const res = await fetch(`${a.url}/api/revalidate?tag=stampede`, { method: 'POST' });
    if (res.status !== 200) throw new Error(`revalidate: ${res.status}`);
    const result = await burst([a, b], '/stampede', 200, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 2_000)); // background regenerations land too
    stampede.push({ contender, instances: 2, originCalls: origin.count('/stampede') - before, ...result });
    log(`[e2e] stampede, ${contender}: ${origin.count('/stampede') - before} origin calls, ${result.failures} failed, slowest ${result.maxMs.toFixed(0)} ms`);
    await b.stop();
    b = undefined;

    // Many pages: A fills the store (and Next's dist dir), a fresh instance C serves them: L1 misses, L2 reads, merging.
    await fill(
      a,
      Array.from({ length: PAGES }, (_, i) => `/p/${i + 1}`),
      8,
    );
    await a.stop();
    c = await startServer('isr', dist, env);
    for (const p of ['/hot', '/p/1']) await get(c, p);
    const page = zipf(PAGES, 1, 7);
    await measure('isr-many-1', contender, [c], () => `/p/${page()}`);
  } finally {
    await Promise.all([a.stop(), b?.stop(), c?.stop()]);
    removeDistDir('isr', dist);
  }

  if (!USE_CACHE.has(contender)) continue;
  await client.flushall();
  const ucDist = freshDistDir('uc', builds.uc!, contender);
  const uc = await startServer('uc', ucDist, env);
  try {
    await prime([uc], ['/uc', '/uc'], '/uc');
    await measure('uc-1', contender, [uc], '/uc');
  } finally {
    await uc.stop();
    removeDistDir('uc', ucDist);
  }
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
  settings: { seconds: SECONDS, connections: CONNECTIONS, pages: PAGES, zipfExponent: 1, stampedeRequests: 200 },
  scenarios: SCENARIOS,
  contenders: CONTENDERS,
  cells,
  stampede,
};
for (const file of writeResults(path.join(ROOT, 'bench', 'results'), results)) log(`[e2e] wrote ${path.relative(ROOT, file)}`);
log(`[e2e] done in ${((performance.now() - startedAt) / 1000).toFixed(0)} s`);

await client.quit();
await origin.stop();
await redis.stop();

function versionOfRoot(pkg: string): string {
  return (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
}
