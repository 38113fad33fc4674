/**
 * `cache(fn, options)`: memoises an async function in a TieredCache (L1 + the resolved L2), with per-process
 * single-flight, cross-instance stampede locks where the backend offers them, stale-while-revalidate and tags shared
 * with the Next handlers.
 *
 * Keys: `${keyPrefix}${namespace}:fn:${name}:${hash}`, where `hash` hashes the arguments by the rules of loader-key.ts
 * (Date, Map, Set, BigInt, URL, typed arrays and plain objects included; object keys and Map entries sorted; trailing
 * `undefined` arguments dropped, so optional parameters left out hash like absent ones). Arguments without a key
 * (functions, class instances) reject the call before the function runs: pass `key` (a string, or a function of the
 * arguments) for those. An explicit `key` replaces the hash.
 *
 * Stored record (record-store.ts): `[expiresAt ms, storedAt ms, freshUntil ms, tags, value]` in cachekit's ByteStorage
 * envelope, the value encoded so a hit returns what the miss returned, type for type (typed-value.ts; a value that
 * cannot come back as it is, e.g. with a function inside, is returned but not stored, and reported); encrypted with
 * `encryption` / `cache.secure`; or, with `interop`, the bare value as a Python cachekit service writes it.
 *
 * Inside a Next app, the default backend, key prefix and namespace are the Next handlers' (one app, one store).
 *
 * Writes and `invalidate()` are announced on the backend's invalidation channel (Redis pub/sub): other instances drop
 * their L1 copy at once. Over backends without messages they bump the invalidation epoch (epoch.ts), which a call
 * reads once per Next request (at most once per second outside one) before it trusts its L1 copy.
 */
import { cachekitIOFromEnv } from '../stack/resolve.js';
import { interopKey } from '../wire/interop.js';
import { ArgumentKeyError, hashArgs } from '../wire/loader-key.js';
import { ConfigError, stringOption } from '../shared/options.js';

import type { CacheOptions, CachedFunction, CacheResult } from './types.js';
import { COMPONENT, coreOptions, defaultScope, encryptorOf, interopSettings, validateCacheOptions } from './options.js';
import { cacheSignature, sharedCore } from './registry.js';
import { fromUnstableCacheForm, type UnstableCacheOptions } from './unstable-cache.js';
import { loaderEntryKey, loaderScope } from '../wire/keys.js';
import { deprecatedTenant } from '../stack/vocabulary.js';

function makeCached<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options: CacheOptions<A> = {}): CachedFunction<A, R> {
  if (typeof fn !== 'function') throw new ConfigError(COMPONENT, 'fn', 'must be a function');
  const policy = validateCacheOptions(options as CacheOptions<never[]>);
  const name = stringOption(COMPONENT, 'name', options.name, fn.name);
  const interop = interopSettings(options, name);
  if (!name && options.key === undefined && !interop) {
    throw new ConfigError(COMPONENT, 'name', 'is required for an anonymous function (or pass `key`): it scopes the keys');
  }
  if (options.key !== undefined && typeof options.key !== 'string' && typeof options.key !== 'function') {
    throw new ConfigError(COMPONENT, 'key', 'must be a string or a function of the arguments');
  }
  const tenant = options.tenant ?? deprecatedTenant(COMPONENT, options.encryption) ?? 'default';
  const scope = defaultScope(options as CacheOptions<never[]>);
  const keyPrefix = stringOption(COMPONENT, 'keyPrefix', options.keyPrefix, scope.keyPrefix);
  const namespace = stringOption(COMPONENT, 'namespace', options.namespace, scope.namespace);
  const encryption = encryptorOf(options.encryption);
  const settings = coreOptions(options as CacheOptions<never[]>, `cache:${name || 'fn'}`, { encryption, interop: interop !== undefined });
  const scopeOfKeys = interop ? `interop:${interop.namespace}:${interop.operation}` : loaderScope({ keyPrefix, namespace }, name);
  const core = sharedCore(cacheSignature(scopeOfKeys, options as CacheOptions<never[]>, settings), () => settings);
  const explicit = options.key;
  const keyFor = (...args: A): string => {
    if (interop) return interopKey(interop.namespace, interop.operation, args);
    let part: string;
    try {
      part = explicit === undefined ? hashArgs(args) : typeof explicit === 'string' ? explicit : explicit(...args);
    } catch (error) {
      if (error instanceof ArgumentKeyError) error.message = `cache(${name}): ${error.message}`;
      throw error;
    }
    return loaderEntryKey({ keyPrefix, namespace }, name, part);
  };
  const tenantFor = (args: A): string => {
    if (typeof tenant === 'string') return tenant;
    const value = tenant(...args);
    if (typeof value !== 'string' || value === '')
      throw new ConfigError(COMPONENT, 'tenant', `function must return a non-empty string, got ${JSON.stringify(value)}`);
    return value;
  };
  // Arguments without a key (a function, a class instance; in interop a number past 2^53), or a failing `key`/`tenant`
  // function, reject the call before `fn` runs.
  const run = (args: A) => {
    try {
      return core.runDetailed(keyFor(...args), async () => fn(...args), policy, tenantFor(args));
    } catch (error) {
      return Promise.reject(error as Error);
    }
  };
  const detailed = async (...args: A): Promise<CacheResult<Awaited<R>>> => {
    const started = performance.now();
    const outcome = await run(args);
    return { value: outcome.value as Awaited<R>, status: outcome.status, stale: outcome.stale, ms: performance.now() - started };
  };
  const wrapped = (async (...args: A) => (await run(args)).value) as CachedFunction<A, R>;
  wrapped.detailed = detailed;
  wrapped.invalidate = async (...args: A) => core.delete(keyFor(...args));
  wrapped.keyFor = keyFor;
  wrapped.info = () => {
    const s = core.stats;
    return {
      hits: s.hits,
      misses: s.misses,
      l1Hits: s.l1Hits,
      l2Hits: s.l2Hits,
      calls: s.calls,
      latency: { lookupMs: s.lookups ? s.lookupMs / s.lookups : 0, computeMs: s.calls ? s.computeMs / s.calls : 0 },
      backend: core.backendType,
    };
  };
  Object.defineProperty(wrapped, 'name', { value: fn.name });
  return wrapped;
}

export interface CacheFn {
  <A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options?: CacheOptions<A>): CachedFunction<A, R>;
  /**
   * The form of Next's `unstable_cache`: `keyParts` join the function's name in its keys; `revalidate` seconds of
   * freshness, after which the value is served stale while one call refreshes it (`false`: fresh until a tag is
   * revalidated); `tags` as usual.
   */
  <A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, keyParts: readonly string[] | undefined, options?: UnstableCacheOptions): CachedFunction<A, R>;
  /**
   * The leanest: resolved backend (like `cache`), no circuit breaker, no cross-instance lock (single-flight per
   * process only). For cheap functions where an occasional duplicate call is fine.
   */
  minimal<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options?: CacheOptions<A>): CachedFunction<A, R>;
  /** Every reliability feature: circuit breaker, cross-instance lock, L1. Same as `cache` (its defaults). */
  production<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options?: CacheOptions<A>): CachedFunction<A, R>;
  /**
   * `production` with encryption (AES-256-GCM, per-tenant keys, the L1 keeps ciphertext): `encryption` options, else
   * CACHEKIT_MASTER_KEY; neither is a ConfigError. A value that fails to decrypt is a miss and is evicted, or with
   * `failClosed` (CACHEKIT_ENCRYPTION_FAIL_CLOSED) an error.
   */
  secure<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options?: CacheOptions<A>): CachedFunction<A, R>;
  /** `production` on an explicit `CachekitIOBackend.fromEnv()` (CACHEKIT_API_KEY ...), whatever the default backend. */
  io<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options?: CacheOptions<A>): CachedFunction<A, R>;
}

/** Memoises an async function; see the module comment for keys, records and semantics. */
function cacheEntry<A extends unknown[], R>(
  fn: (...args: A) => R | Promise<R>,
  ...rest: [(CacheOptions<A> | readonly string[])?, UnstableCacheOptions?]
): CachedFunction<A, R> {
  const [second, third] = rest;
  // `cache(fn, undefined, { revalidate })` is the unstable_cache form too: it is told by the argument count.
  if (Array.isArray(second) || rest.length > 1) return makeCached(fn, fromUnstableCacheForm(fn, second, third));
  return makeCached(fn, second as CacheOptions<A> | undefined);
}

export const cache: CacheFn = Object.assign(cacheEntry as CacheFn, {
  minimal: <A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options: CacheOptions<A> = {}) =>
    makeCached(fn, { breaker: false, lock: false, ...options }),
  production: <A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options: CacheOptions<A> = {}) =>
    makeCached(fn, { breaker: true, lock: true, ...options }),
  secure: <A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options: CacheOptions<A> = {}) =>
    makeCached(fn, { breaker: true, lock: true, ...options, encryption: options.encryption ?? {} }),
  io: <A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options: CacheOptions<A> = {}) =>
    makeCached(fn, { breaker: true, lock: true, ...options, backend: options.backend ?? cachekitIOFromEnv() }),
});
