/**
 * The process environment, read in one place. Below the edges, components take values or an explicit `env`; the
 * edges (the composition root in stack/, withCachekit, the backends' and Encryptor's `fromEnv`) get it from
 * `processEnv()`. test/shared/env.test.ts pins that nothing else reads `process.env` and who the edges are.
 */
import { envNumberOption } from './options.js';

export type Env = NodeJS.ProcessEnv;

/** The process's environment: the one read of `process.env` in src/. */
export function processEnv(): Env {
  return process.env;
}

/** Where `withCachekit` passes its (serialisable) options to every process that loads the handlers. */
export const OPTIONS_ENV = 'CACHEKIT_NEXT_OPTIONS';

/** `next build` is running (in its workers too): entries written now are build-time only. */
export function isNextBuild(env: Env): boolean {
  return env.NEXT_PHASE === 'phase-production-build';
}

/** `next dev`'s server. */
export function isNextDevServer(env: Env): boolean {
  return Boolean(env.__NEXT_DEV_SERVER);
}

/** The deployment id Next was given (`NEXT_DEPLOYMENT_ID`), if any. */
export function nextDeploymentId(env: Env): string | undefined {
  return env.NEXT_DEPLOYMENT_ID || undefined;
}

/** A Next.js process (`next build` workers, `next start`), or one where withCachekit's options are set. */
export function isInsideNext(env: Env): boolean {
  return Boolean(env[OPTIONS_ENV] || env.NEXT_PHASE || env.__NEXT_PRIVATE_ORIGIN);
}

/** The standalone server's serialised Next config (`node server.js` of `output: 'standalone'`). */
export function standaloneConfig(env: Env): string | undefined {
  return env.__NEXT_PRIVATE_STANDALONE_CONFIG;
}

/** Every CACHEKIT_* variable as `NAME=value`, sorted: a changed setting yields a new memo signature. */
export function cachekitVariables(env: Env): string[] {
  return Object.keys(env)
    .filter((name) => name.startsWith('CACHEKIT_'))
    .sort()
    .map((name) => `${name}=${env[name]}`);
}

/** `CACHEKIT_L1_MAX_SIZE_MB`: the default L1 byte budget, in MiB. */
export function l1MaxSizeMbFromEnv(env: Env): number | undefined {
  return envNumberOption('CACHEKIT_L1_MAX_SIZE_MB', env, { min: 0, minInclusive: false });
}

/**
 * `CACHEKIT_TRACE_L1_HITS`: a span for every lookup, L1 hits included (`1`/`true`; `0`/`false` or unset: no).
 * `undefined` for any other value, which the caller names in a warning (tracing must never break a page).
 */
export function traceL1HitsFromEnv(env: Env): boolean | undefined {
  const raw = env.CACHEKIT_TRACE_L1_HITS;
  if (raw === undefined || raw === '' || raw === '0' || raw === 'false') return false;
  if (raw === '1' || raw === 'true') return true;
  return undefined;
}
