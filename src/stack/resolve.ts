/**
 * Which backend a cache uses when none is passed: explicit > `setDefaultBackend` > environment > embedded File.
 */
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '../shared/options.js';
import { infoOnce } from '../shared/log.js';
import { singleton } from '../shared/registry.js';
import { CachekitIOBackend } from '../backends/cachekitio.js';
import { FileBackend } from '../backends/file.js';
import { MemcachedBackend } from '../backends/memcached.js';
import { MemoryBackend } from '../backends/memory.js';
import { RedisBackend } from '../backends/redis.js';
import { isBackend, type Backend } from '../protocol/backend.js';
import { cachekitVariables, processEnv } from '../shared/env.js';

const defaults = () => singleton<{ backend?: Backend }>('defaultBackend', () => ({}));

/**
 * Sets the backend every cache uses when it is given none. `null` clears it (resolution falls back to the
 * environment). Call once at startup, e.g. from a module referenced by `withCachekit({ backend: './cachekit.backend.mjs' })`.
 */
export function setDefaultBackend(backend: Backend | null): void {
  if (backend !== null && !isBackend(backend)) {
    throw new ConfigError('setDefaultBackend', 'backend', 'must implement get, set, delete, exists and healthCheck (or be null to clear)');
  }
  defaults().backend = backend ?? undefined;
}

/** The module-level default set by `setDefaultBackend`, or `undefined`. */
export function getDefaultBackend(): Backend | undefined {
  return defaults().backend;
}

/** The environment variables that each select one backend. More than one set is a configuration error. */
export const BACKEND_ENV_VARS = ['CACHEKIT_API_KEY', 'CACHEKIT_REDIS_URL', 'CACHEKIT_MEMCACHED_SERVERS', 'CACHEKIT_FILE_CACHE_DIR'] as const;

export interface ResolveOptions {
  env?: NodeJS.ProcessEnv;
  /** Directory of the embedded File backend when nothing else is configured. @default `$TMPDIR/cachekit` */
  defaultFileCacheDir?: string;
}

/**
 * The backend to use: `explicit` when given (`null` = L1-only), else the module default, else the environment:
 * exactly one of {@link BACKEND_ENV_VARS}, else `REDIS_URL`, else the embedded File backend (announced once).
 * Backends built from the environment are memoised per configuration, so repeated resolution shares connections.
 */
export function resolveBackend(explicit?: Backend | null, options: ResolveOptions = {}): Backend | null {
  if (explicit !== undefined) {
    if (explicit !== null && !isBackend(explicit)) {
      throw new ConfigError('resolveBackend', 'backend', 'must implement get, set, delete, exists and healthCheck, or be null for L1-only');
    }
    return explicit;
  }
  const fromDefault = getDefaultBackend();
  if (fromDefault) return fromDefault;
  return backendFromEnv(options);
}

/** The backend the environment selects (see {@link resolveBackend}). */
export function backendFromEnv(options: ResolveOptions = {}): Backend {
  const env = options.env ?? processEnv();
  const set = BACKEND_ENV_VARS.filter((name) => (env[name] ?? '').trim() !== '');
  if (set.length > 1) {
    throw new ConfigError('environment', set.join(', '), `select different backends; set only one of ${BACKEND_ENV_VARS.join(', ')}`);
  }
  const selected = set[0] ?? ((env.REDIS_URL ?? '').trim() !== '' ? 'REDIS_URL' : 'embedded-file');
  const fileDir = options.defaultFileCacheDir ?? path.join(os.tmpdir(), 'cachekit');
  const signature = JSON.stringify([selected, selected === 'embedded-file' ? fileDir : env[selected], ...cachekitVariables(env)]);
  const memo = singleton('envBackends', () => new Map<string, Backend>());
  const existing = memo.get(signature);
  if (existing) return existing;

  let backend: Backend;
  switch (selected) {
    case 'CACHEKIT_API_KEY':
      backend = CachekitIOBackend.fromEnv(env);
      break;
    case 'CACHEKIT_REDIS_URL':
    case 'REDIS_URL':
      backend = RedisBackend.fromEnv(env);
      break;
    case 'CACHEKIT_MEMCACHED_SERVERS':
      backend = MemcachedBackend.fromEnv(env);
      break;
    case 'CACHEKIT_FILE_CACHE_DIR':
      backend = FileBackend.fromEnv(env);
      break;
    default:
      backend = new FileBackend({ cacheDir: fileDir });
      infoOnce(
        `embedded-file:${fileDir}`,
        `[cachekit] no backend configured (CACHEKIT_REDIS_URL, REDIS_URL, CACHEKIT_MEMCACHED_SERVERS, CACHEKIT_API_KEY, ` +
          `CACHEKIT_FILE_CACHE_DIR): using the embedded File backend in ${fileDir}. It is not shared between machines.`,
      );
  }
  memo.set(signature, backend);
  return backend;
}

/** `cache.io`'s backend: one `CachekitIOBackend.fromEnv()` (and connection pool) per CACHEKIT_* configuration. */
export function cachekitIOFromEnv(): CachekitIOBackend {
  const env = processEnv();
  const signature = JSON.stringify(cachekitVariables(env));
  const ioBackends = singleton('cachekitIOBackends', () => new Map<string, CachekitIOBackend>());
  let backend = ioBackends.get(signature);
  if (!backend) ioBackends.set(signature, (backend = CachekitIOBackend.fromEnv(env)));
  return backend;
}

/** A backend only this process sees (the in-memory one): nothing another instance writes can go stale in our L1. */
export function isProcessLocal(backend: Backend): boolean {
  return backend instanceof MemoryBackend;
}
