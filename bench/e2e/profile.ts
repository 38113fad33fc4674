/**
 * Where `next start` spends its CPU serving a page from the cache: one server per contender under --cpu-prof, primed,
 * then autocannon for a few seconds, then SIGTERM (the profile is written on exit) and a summary per request.
 *
 *   npm run bench -- e2e/profile      BENCH_E2E_ONLY=cachekit,next  BENCH_PROFILE_PATH=/hot  BENCH_PROFILE_APP=isr
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startRedis } from '../../test/support/servers.js';
import { summariseProfile } from '../profile.js';
import { load } from './load.js';
import { buildApp, freshDistDir, installApps, ROOT, removeDistDir, startOrigin, startServer } from './servers.js';

const APP = process.env.BENCH_PROFILE_APP ?? 'isr';
const PAGE = process.env.BENCH_PROFILE_PATH ?? (APP === 'uc' ? '/uc' : '/hot');
const SECONDS = Number(process.env.BENCH_E2E_SECONDS ?? 6);
const CONTENDERS = (process.env.BENCH_E2E_ONLY ?? 'next,cachekit').split(',');

await installApps(['isr', 'uc'], console.log);
const redis = await startRedis({ args: ['--notify-keyspace-events', 'Exe'] });
const origin = await startOrigin();
const build = await buildApp(APP, { BENCH_ORIGIN_URL: origin.url });
for (const contender of CONTENDERS) {
  const dir = path.join(ROOT, '.cache', 'bench', 'profiles', `e2e-${contender}`);
  rmSync(dir, { recursive: true, force: true });
  const env: NodeJS.ProcessEnv = { BENCH_ORIGIN_URL: origin.url };
  if (contender === 'cachekit') Object.assign(env, { BENCH_HANDLER: 'cachekit', CACHEKIT_REDIS_URL: redis.url });
  if (contender === 'map') Object.assign(env, { BENCH_HANDLER: 'map' });
  if (contender === 'forte') Object.assign(env, { BENCH_HANDLER: 'forte', REDIS_URL: redis.url });
  if (contender === 'trieb') Object.assign(env, { BENCH_HANDLER: 'trieb', REDIS_URL: redis.url, VERCEL_ENV: 'production' });
  const dist = freshDistDir(APP, build.distDir, `profile-${contender}`);
  const server = await startServer(APP, dist, env, ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
  // As the e2e bench primes (bench/e2e/index.ts, RENDERED_ONCE): one render in every server before measuring.
  if (APP === 'isr') await fetch(`${server.url}/p/100000`).then((r) => r.arrayBuffer());
  await load([server], { connections: 32, seconds: 2, path: PAGE });
  const started = performance.now();
  const result = await load([server], { connections: 32, seconds: SECONDS, path: PAGE });
  const ended = performance.now();
  await server.terminate();
  const exited = performance.now();
  removeDistDir(APP, dist);
  // The biggest profile is the server's (the CLI that forked it is mostly idle).
  const files = readdirSync(dir).map((name) => path.join(dir, name));
  const biggest = files.sort((a, b) => readFileSync(b).length - readFileSync(a).length)[0]!;
  console.log(
    `\n### ${contender}: ${PAGE}, ${result.reqPerSec.toFixed(0)} req/s, ${result.cpuMsPerRequest.toFixed(2)} ms CPU/req (${path.relative(ROOT, biggest)})\n`,
  );
  const window = { fromEndUs: (exited - started) * 1000, toEndUs: (exited - ended) * 1000 };
  console.log(summariseProfile(JSON.parse(readFileSync(biggest, 'utf8')), result.requests, (1e6 / result.reqPerSec) * 32, 25, window));
}
await origin.stop();
await redis.stop();
process.exit(0);
