/**
 * A backend as `withCachekit` passes it from next.config to every process that loads the handlers (inside
 * `CACHEKIT_NEXT_OPTIONS`, JSON): a description of a built-in backend, a module of the app's to import, or `null`.
 */
import { isDeepStrictEqual } from 'node:util';
import { pathToFileURL } from 'node:url';
import { CachekitIOBackend, type CachekitIOBackendOptions } from '../backends/cachekitio.js';
import { FileBackend, type FileBackendOptions } from '../backends/file.js';
import { MemcachedBackend, type MemcachedBackendOptions } from '../backends/memcached.js';
import { RedisBackend, type RedisBackendOptions } from '../backends/redis.js';
import { getDefaultBackend } from './resolve.js';
import { isBackend, isClosable, type Backend } from '../protocol/backend.js';
import { runOutsideAsyncContext } from '../shared/async-context.js';
import { ConfigError, describe } from '../shared/options.js';
import { singleton } from '../shared/registry.js';
import { processEnv, type Env } from '../shared/env.js';

/** A built-in backend and its constructor options, e.g. `{ type: 'redis', url: 'redis://cache:6379' }`. */
export type BackendDescription =
  | ({ type: 'redis' } & RedisBackendOptions)
  | ({ type: 'memcached' } & MemcachedBackendOptions)
  | ({ type: 'file' } & FileBackendOptions)
  | ({ type: 'cachekitio' } & CachekitIOBackendOptions);

/** A module of the app's (absolute path) that default-exports a backend or calls `setDefaultBackend`. */
export interface BackendModule {
  module: string;
}

/** What `CACHEKIT_NEXT_OPTIONS.backend` holds. */
export type BackendSpec = BackendDescription | BackendModule | null;

const TYPES = ['redis', 'memcached', 'file', 'cachekitio'] as const;

function construct(description: BackendDescription, env: NodeJS.ProcessEnv): Backend {
  const { type, ...options } = description;
  switch (type) {
    case 'redis':
      // Without url, nodes or sentinels: the URL (and the password in it) from CACHEKIT_REDIS_URL or REDIS_URL.
      return RedisBackend.fromEnv(env, options as RedisBackendOptions);
    case 'memcached':
      return new MemcachedBackend(options as MemcachedBackendOptions, env);
    case 'file':
      return new FileBackend(options as FileBackendOptions);
    case 'cachekitio':
      return new CachekitIOBackend(options as CachekitIOBackendOptions, env);
  }
}

/**
 * Checks a spec as it will be used in another process: a known shape, JSON-serialisable, and (for a description)
 * (with `probe`) accepted by the backend's own constructor. Throws a ConfigError naming `option` (or the backend's option).
 */
export function validateBackendSpec(spec: unknown, option = 'backend', { probe = true } = {}): asserts spec is BackendSpec {
  if (spec === null) return;
  if (typeof spec !== 'object' || Array.isArray(spec)) {
    throw new ConfigError('withCachekit', option, `must be a module path, a description such as { type: 'redis', url }, or null, got ${describe(spec)}`);
  }
  if ('module' in spec) {
    if (typeof spec.module !== 'string' || spec.module === '' || Object.keys(spec).length !== 1) {
      throw new ConfigError('withCachekit', `${option}.module`, 'must be the only key, an absolute path');
    }
    return;
  }
  const type = (spec as { type?: unknown }).type;
  if (!TYPES.includes(type as (typeof TYPES)[number])) {
    throw new ConfigError('withCachekit', `${option}.type`, `must be one of ${TYPES.join(', ')}, got ${describe(type)}`);
  }
  if (!isDeepStrictEqual(JSON.parse(JSON.stringify(spec)), spec)) {
    // It travels as JSON: a Buffer (e.g. a TLS certificate) or a function would arrive changed or not at all.
    throw new ConfigError(
      'withCachekit',
      option,
      'must be JSON-serialisable (it reaches the worker processes through CACHEKIT_NEXT_OPTIONS); put it in a backend module instead',
    );
  }
  if (!probe) return; // the backend is about to be constructed anyway, which validates it
  // The constructor's own validation, naming the backend option. The API key of CachekitIO may legitimately come
  // from the environment of the server only, so a missing one is not an error here.
  const trial = { ...spec } as BackendDescription;
  const env = processEnv();
  if (trial.type === 'cachekitio' && trial.apiKey === undefined && !env.CACHEKIT_API_KEY?.trim()) trial.apiKey = 'validation-only';
  // Likewise the URL of Redis, from CACHEKIT_REDIS_URL or REDIS_URL where the server runs.
  const redisEnv = !env.CACHEKIT_REDIS_URL?.trim() && !env.REDIS_URL?.trim();
  if (trial.type === 'redis' && redisEnv && trial.url === undefined && trial.nodes === undefined && trial.sentinels === undefined)
    trial.url = 'redis://validation-only';
  const backend = construct(trial, env);
  // Connections open lazily: nothing was opened, but release what the constructor holds (Redis's shared set).
  if (isClosable(backend)) void backend.close().catch(() => {});
}

/** The backend a description stands for: one per description per process. */
export function backendFromDescription(description: BackendDescription, env: Env): Backend {
  const memo = singleton('describedBackends', () => new Map<string, Backend>());
  const signature = JSON.stringify(description);
  let backend = memo.get(signature);
  if (!backend) memo.set(signature, (backend = construct(description, env)));
  return backend;
}

/**
 * Imports a backend module once per process. Resolves to its backend: the default export when it is a backend (or
 * a function returning one, possibly async), else `undefined` when the module called `setDefaultBackend` (resolution
 * then finds it). Rejects with a ConfigError naming `backend` when it did neither.
 */
export function loadBackendModule(file: string): Promise<Backend | undefined> {
  const memo = singleton('backendModules', () => new Map<string, Promise<Backend | undefined>>());
  let loading = memo.get(file);
  if (!loading) {
    // Outside the request's async context: the module may open connections that live as long as the process.
    loading = runOutsideAsyncContext(() => importBackend(file));
    memo.set(file, loading);
  }
  return loading;
}

async function importBackend(file: string): Promise<Backend | undefined> {
  const mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
  let exported: unknown = mod.default;
  // A CommonJS module imported natively: its module.exports is `default`, and a transpiled `export default` under it.
  if (exported && typeof exported === 'object' && !isBackend(exported) && 'default' in exported) exported = (exported as { default: unknown }).default;
  if (typeof exported === 'function' && !isBackend(exported)) exported = await (exported as () => unknown)();
  if (isBackend(exported)) return exported;
  if (exported === undefined && getDefaultBackend()) return undefined;
  throw new ConfigError(
    'withCachekit',
    'backend',
    `module ${file} must default-export a backend (an object with get, set, delete, exists and healthCheck, or a function returning one) or call setDefaultBackend(); its default export is ${describe(exported)}`,
  );
}
