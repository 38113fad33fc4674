/**
 * `cache(fn, options)`: memoises an async function in a TieredCache (L1 + the resolved L2), with per-process
 * single-flight, cross-instance stampede locks where the backend offers them, stale-while-revalidate and tags shared
 * with the Next handlers.
 *
 * Keys: `${keyPrefix}${namespace}:fn:${name}:${hash}`, where `hash` is the hex SHA-256 of the canonical MessagePack of
 * the argument array (map keys sorted by code point, shortest encodings, integral floats as ints; trailing `undefined`
 * arguments dropped, so optional parameters left out hash like absent ones). Arguments without a canonical form
 * (functions, class instances, `undefined` inside objects) throw: pass `key` (a string, or a function of the
 * arguments) for those. An explicit `key` replaces the hash.
 *
 * Stored record (MessagePack in the cachekit frame): `{ v: value, s: storedAt ms, f: freshUntil ms, t: tags }`.
 */
import { createHash } from 'node:crypto';
import { resolveBackend } from '../backends/resolve.js';
import { CachekitIOBackend } from '../backends/cachekitio.js';
import { BackendError, hasLocks, type Backend } from '../backends/types.js';
import { configuredRuntime, type Runtime } from '../next/runtime.js';
import { frame, packValue, unframe, unpackValue } from './codec.js';
import { warnRateLimited } from './log.js';
import { encodeCanonical } from './msgpack-canonical.js';
import { assertKnownOptions, ConfigError, numberOption, stringOption } from './options.js';
import { TieredCache, type Codec, type HitSource } from './tiered.js';

export interface CacheOptions<A extends unknown[] = unknown[]> {
  /** Seconds an entry is fresh (and, without `staleTtl`, stored). @default 300 */
  ttl?: number;
  /** Seconds after `ttl` during which the old value is served while one background call refreshes it. @default 0 */
  staleTtl?: number;
  /** Tags of every entry; `runtime.revalidateTags` (Next `revalidateTag`/`updateTag`) on one of them invalidates it. */
  tags?: readonly string[];
  /** Key scope. @default the namespace of a `runtime` object passed, else 'default' */
  namespace?: string;
  /** Prefix of every key. @default the keyPrefix of a `runtime` object passed, else 'cachekit:' */
  keyPrefix?: string;
  /** Function name in the key. @default fn.name (required for anonymous functions without `key`) */
  name?: string;
  /** Explicit key (replaces the argument hash): a string, or a function of the arguments. */
  key?: string | ((...args: A) => string);
  /** The L2; `null` = L1 only. @default resolveBackend(): setDefaultBackend > environment */
  backend?: Backend | null;
  /**
   * L1 in front of the backend, or `false`. `invalidate()` drops only this process's L1 copy: other instances keep
   * theirs up to `maxTtlSeconds` (default: the entry's TTL); tag invalidations reach every instance (tag store).
   * @default {}
   */
  l1?: { maxSizeMb?: number; maxTtlSeconds?: number } | false;
  /**
   * Cross-instance stampede lock when the backend offers locks: one caller computes, the others poll the key.
   * @default true
   */
  lock?: boolean;
  /** Lease of that lock in ms: a crashed holder blocks others at most this long. @default 10000 */
  lockTimeoutMs?: number;
  /** Longest a waiter polls before computing itself (never hangs). @default lockTimeoutMs */
  lockWaitMs?: number;
  /** Circuit breaker on the backend. @default true */
  breaker?: boolean;
  /** Deadline for every L2 call, ms. @default 5000 */
  timeoutMs?: number;
  /**
   * Tag store of `tags`: a Next runtime (e.g. `getRuntime(options)`), or a function returning one.
   * @default with tags, the Next handlers' runtime (`configuredRuntime()`): Next's revalidateTag/updateTag reach entries
   */
  runtime?: Runtime | (() => Runtime | Promise<Runtime>);
}

export interface CacheInfo {
  /** Calls answered from the cache, including callers that joined an in-flight call for the same key. */
  hits: number;
  misses: number;
  l1Hits: number;
  l2Hits: number;
  /** Calls of the wrapped function (misses computed here, background refreshes). */
  calls: number;
  /** Average milliseconds. `lookupMs`: cache read per call; `computeMs`: per call of the wrapped function. */
  latency: { lookupMs: number; computeMs: number };
}

export type CachedFunction<A extends unknown[], R> = ((...args: A) => Promise<Awaited<R>>) & {
  /** Deletes the entry of these arguments (L1 and L2). */
  invalidate(...args: A): Promise<boolean>;
  info(): CacheInfo;
  /** The storage key of these arguments. */
  keyFor(...args: A): string;
};

interface StoredRecord {
  v: unknown;
  s: number;
  f: number;
  t?: string[];
}

const recordCodec: Codec<StoredRecord> = {
  encode: (record) => frame(packValue(record)),
  decode: (bytes) => {
    const record = unpackValue(unframe(bytes)) as StoredRecord;
    if (record === null || typeof record !== 'object' || typeof record.s !== 'number' || typeof record.f !== 'number') {
      throw new Error('not a cached-function record');
    }
    return record;
  },
};

const KNOWN = ['ttl', 'staleTtl', 'tags', 'namespace', 'keyPrefix', 'name', 'key', 'backend', 'l1', 'lock', 'lockTimeoutMs', 'lockWaitMs', 'breaker', 'timeoutMs', 'runtime'];
const COMPONENT = 'cache';
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Hex SHA-256 of the canonical MessagePack of `args` (trailing undefined dropped). */
export function hashArgs(args: readonly unknown[]): string {
  let end = args.length;
  while (end > 0 && args[end - 1] === undefined) end--;
  return createHash('sha256').update(encodeCanonical(args.slice(0, end), 'args')).digest('hex');
}

/** Per-call policy of the shared machinery. */
export interface Policy {
  ttl: number;
  staleTtl: number;
  tags: readonly string[];
  /** `false`: return the value without storing it (e.g. an error response). */
  store?: (value: unknown) => boolean;
}

/** Single-flight, locks, SWR and tags over one TieredCache (used by `cache` and `cachedFetch`). */
export class CachedCore {
  readonly tiered: TieredCache<StoredRecord>;
  readonly #lock: boolean;
  readonly #lockTimeoutMs: number;
  readonly #lockWaitMs: number;
  readonly #runtime: CacheOptions['runtime'];
  readonly #flights = new Map<string, Promise<unknown>>();
  readonly #refreshing = new Set<string>();
  readonly stats = { hits: 0, misses: 0, l1Hits: 0, l2Hits: 0, calls: 0, lookups: 0, lookupMs: 0, computeMs: 0 };

  constructor(options: { backend: Backend | null; l1?: { maxSizeMb?: number; maxTtlSeconds?: number } | false; lock: boolean; lockTimeoutMs: number; lockWaitMs: number; breaker: boolean; timeoutMs: number; runtime?: CacheOptions['runtime']; name: string }) {
    this.tiered = new TieredCache<StoredRecord>({
      backend: options.backend,
      codec: recordCodec,
      l1: options.l1 ?? {},
      timeoutMs: options.timeoutMs,
      breaker: options.breaker ? undefined : false,
      name: options.name,
    });
    this.#lock = options.lock;
    this.#lockTimeoutMs = options.lockTimeoutMs;
    this.#lockWaitMs = options.lockWaitMs;
    this.#runtime = options.runtime;
  }

  /** The cached value of `key`, computing it (once per process, once across instances with locks) on a miss. */
  run(key: string, compute: () => Promise<unknown>, policy: Policy): Promise<unknown> {
    const flight = this.#flights.get(key);
    if (flight) {
      this.stats.hits++;
      return flight;
    }
    const created = this.#get(key, compute, policy).finally(() => this.#flights.delete(key));
    this.#flights.set(key, created);
    return created;
  }

  async #get(key: string, compute: () => Promise<unknown>, policy: Policy): Promise<unknown> {
    const started = performance.now();
    const found = await this.#read(key, policy);
    this.stats.lookups++;
    this.stats.lookupMs += performance.now() - started;
    if (found && found.state !== 'miss') {
      this.stats.hits++;
      if (found.source === 'l1') this.stats.l1Hits++;
      else this.stats.l2Hits++;
      if (found.state === 'stale') this.#refreshInBackground(key, compute, policy);
      return found.record.v;
    }
    this.stats.misses++;
    return this.#computeLocked(key, compute, policy);
  }

  /** The stored record and whether it is fresh, stale (servable while refreshing) or a miss. */
  async #read(key: string, policy: Policy, retry = true): Promise<{ record: StoredRecord; source: HitSource; state: 'fresh' | 'stale' | 'miss' } | null> {
    const found = await this.#readOnce(key, policy);
    if (retry && found && found.state !== 'fresh' && found.source === 'l1') {
      // This process's copy is stale or dead (tag event, past its time); another instance may have stored a newer one.
      this.tiered.invalidateLocal(key);
      return this.#read(key, policy, false);
    }
    return found;
  }

  async #readOnce(key: string, policy: Policy): Promise<{ record: StoredRecord; source: HitSource; state: 'fresh' | 'stale' | 'miss' } | null> {
    const hit = await this.tiered.lookup(key);
    if (!hit) return null;
    const { value: record, source } = hit;
    const now = Date.now();
    let state: 'fresh' | 'stale' | 'miss' = now < record.f ? 'fresh' : now < record.f + policy.staleTtl * 1000 ? 'stale' : 'miss';
    if (state !== 'miss' && record.t && record.t.length > 0) {
      const verdict = await this.#tagVerdict(record.t, record.s);
      // 'stale' from the tag store (revalidateTag with an expire duration) is served once while refreshing, like Next.
      if (verdict === 'expired') state = 'miss';
      else if (verdict === 'stale') state = 'stale';
    }
    return { record, source, state };
  }

  async #tagVerdict(tags: readonly string[], storedAt: number): Promise<'fresh' | 'stale' | 'expired'> {
    const runtime = await this.#resolveRuntime();
    if (!runtime) return 'fresh';
    try {
      return await runtime.tags.verdict(tags, storedAt);
    } catch (error) {
      runtime.report(error, 'cache.tags');
      return 'fresh';
    }
  }

  async #resolveRuntime(): Promise<Runtime | null> {
    const source = this.#runtime;
    if (!source) return null;
    return typeof source === 'function' ? await source() : source;
  }

  async #computeAndStore(key: string, compute: () => Promise<unknown>, policy: Policy): Promise<unknown> {
    const started = performance.now();
    this.stats.calls++;
    const storedAt = Date.now();
    let value: unknown;
    try {
      value = await compute();
    } finally {
      this.stats.computeMs += performance.now() - started;
    }
    if (policy.store && !policy.store(value)) return value;
    const record: StoredRecord = { v: value, s: storedAt, f: storedAt + policy.ttl * 1000, ...(policy.tags.length ? { t: [...policy.tags] } : {}) };
    await this.tiered.set(key, record, policy.ttl + policy.staleTtl);
    return value;
  }

  async #acquire(key: string): Promise<string | null | 'none'> {
    const backend = this.tiered.backend;
    if (!this.#lock || !backend || !hasLocks(backend)) return 'none';
    try {
      return await backend.acquireLock(key, this.#lockTimeoutMs);
    } catch (error) {
      // Without the lock service, compute unlocked (a stampede is better than no answer).
      report(error, 'acquireLock', key);
      return 'none';
    }
  }

  async #release(key: string, token: string): Promise<void> {
    const backend = this.tiered.backend;
    if (!backend || !hasLocks(backend)) return;
    try {
      await backend.releaseLock(key, token);
    } catch (error) {
      // The lease expires on its own.
      report(error, 'releaseLock', key);
    }
  }

  async #computeLocked(key: string, compute: () => Promise<unknown>, policy: Policy): Promise<unknown> {
    let token = await this.#acquire(key);
    if (token === 'none') return this.#computeAndStore(key, compute, policy);
    const deadline = Date.now() + this.#lockWaitMs;
    let delay = 10;
    while (token === null) {
      if (Date.now() >= deadline) return this.#computeAndStore(key, compute, policy);
      await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
      delay = Math.min(delay * 1.5, 250);
      // Another instance may have written meanwhile; the L1 holds nothing for this key (it was a miss).
      const found = await this.#read(key, policy);
      if (found && found.state === 'fresh') return found.record.v;
      // The holder finished without storing, or crashed and its lease expired: take over.
      token = await this.#acquire(key);
      if (token === 'none') return this.#computeAndStore(key, compute, policy);
    }
    try {
      // The previous holder may have written between our read and our lock.
      const found = await this.#read(key, policy);
      if (found && found.state === 'fresh') return found.record.v;
      return await this.#computeAndStore(key, compute, policy);
    } finally {
      await this.#release(key, token);
    }
  }

  #refreshInBackground(key: string, compute: () => Promise<unknown>, policy: Policy): void {
    if (this.#refreshing.has(key)) return;
    this.#refreshing.add(key);
    void (async () => {
      const token = await this.#acquire(key);
      if (token === null) return; // another instance refreshes
      try {
        // Another instance may have refreshed between our stale read and our lock.
        if ((await this.#read(key, policy))?.state === 'fresh') return;
        await this.#computeAndStore(key, compute, policy);
      } finally {
        if (token !== 'none') await this.#release(key, token);
      }
    })()
      .catch((error: unknown) => report(error, 'refresh', key))
      .finally(() => this.#refreshing.delete(key));
  }
}

function report(error: unknown, operation: string, key: string): void {
  const message = BackendError.is(error) ? error.message : `${(error as Error)?.message ?? String(error)}`;
  warnRateLimited(`cache:${operation}:${message}`, `[cachekit] cache ${operation} ${key}: ${message}`);
}

/** Validated options shared by `cache` and `cachedFetch`. */
export function coreOptions(options: CacheOptions<never[]>, name: string): ConstructorParameters<typeof CachedCore>[0] {
  const lockTimeoutMs = numberOption(COMPONENT, 'lockTimeoutMs', options.lockTimeoutMs, 10_000, { min: 0, minInclusive: false });
  return {
    backend: resolveBackend(options.backend),
    l1: options.l1,
    lock: options.lock ?? true,
    lockTimeoutMs,
    lockWaitMs: numberOption(COMPONENT, 'lockWaitMs', options.lockWaitMs, lockTimeoutMs, { min: 0 }),
    breaker: options.breaker ?? true,
    timeoutMs: numberOption(COMPONENT, 'timeoutMs', options.timeoutMs, 5_000, { min: 0, minInclusive: false }),
    // Tagged entries without an explicit runtime use the Next handlers' one (CACHEKIT_NEXT_OPTIONS, what withCachekit
    // sets), so revalidateTag/updateTag in the app reach them.
    runtime: options.runtime ?? (options.tags?.length ? () => configuredRuntime() : undefined),
    name,
  };
}

export function validateCacheOptions(options: CacheOptions<never[]>): { ttl: number; staleTtl: number; tags: readonly string[] } {
  assertKnownOptions(COMPONENT, options, KNOWN);
  const ttl = numberOption(COMPONENT, 'ttl', options.ttl, 300, { min: 0, minInclusive: false });
  const staleTtl = numberOption(COMPONENT, 'staleTtl', options.staleTtl, 0, { min: 0 });
  const tags = options.tags ?? [];
  if (!Array.isArray(tags) || tags.some((tag) => typeof tag !== 'string' || tag === '')) {
    throw new ConfigError(COMPONENT, 'tags', 'must be an array of non-empty strings');
  }
  if (options.runtime !== undefined && (options.runtime === null || (typeof options.runtime !== 'function' && typeof options.runtime !== 'object'))) {
    throw new ConfigError(COMPONENT, 'runtime', 'must be a Runtime or a function returning one');
  }
  return { ttl, staleTtl, tags };
}

function makeCached<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options: CacheOptions<A> = {}): CachedFunction<A, R> {
  if (typeof fn !== 'function') throw new ConfigError(COMPONENT, 'fn', 'must be a function');
  const policy = validateCacheOptions(options as CacheOptions<never[]>);
  const name = stringOption(COMPONENT, 'name', options.name, fn.name);
  if (!name && options.key === undefined) {
    throw new ConfigError(COMPONENT, 'name', 'is required for an anonymous function (or pass `key`): it scopes the keys');
  }
  if (options.key !== undefined && typeof options.key !== 'string' && typeof options.key !== 'function') {
    throw new ConfigError(COMPONENT, 'key', 'must be a string or a function of the arguments');
  }
  const runtimeNow = options.runtime && typeof options.runtime !== 'function' ? options.runtime : undefined;
  const keyPrefix = stringOption(COMPONENT, 'keyPrefix', options.keyPrefix, runtimeNow?.keyPrefix ?? 'cachekit:');
  const namespace = stringOption(COMPONENT, 'namespace', options.namespace, runtimeNow?.namespace ?? 'default');
  const core = new CachedCore(coreOptions(options as CacheOptions<never[]>, `cache:${name || 'fn'}`));
  const explicit = options.key;
  const keyFor = (...args: A): string => {
    const part = explicit === undefined ? hashArgs(args) : typeof explicit === 'string' ? explicit : explicit(...args);
    return `${keyPrefix}${namespace}:fn:${name}:${part}`;
  };
  const wrapped = ((...args: A) => core.run(keyFor(...args), async () => fn(...args), policy)) as CachedFunction<A, R>;
  wrapped.invalidate = (...args: A) => core.tiered.delete(keyFor(...args));
  wrapped.keyFor = keyFor;
  wrapped.info = () => {
    const s = core.stats;
    return {
      hits: s.hits, misses: s.misses, l1Hits: s.l1Hits, l2Hits: s.l2Hits, calls: s.calls,
      latency: { lookupMs: s.lookups ? s.lookupMs / s.lookups : 0, computeMs: s.calls ? s.computeMs / s.calls : 0 },
    };
  };
  Object.defineProperty(wrapped, 'name', { value: fn.name });
  return wrapped;
}

export interface CacheFn {
  <A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options?: CacheOptions<A>): CachedFunction<A, R>;
  /**
   * The leanest: resolved backend (like `cache`), no circuit breaker, no cross-instance lock (single-flight per
   * process only). For cheap functions where an occasional duplicate call is fine.
   */
  minimal<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options?: CacheOptions<A>): CachedFunction<A, R>;
  /** Every reliability feature: circuit breaker, cross-instance lock, L1. Same as `cache` (its defaults). */
  production<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options?: CacheOptions<A>): CachedFunction<A, R>;
  /** `production` on an explicit `CachekitIOBackend.fromEnv()` (CACHEKIT_API_KEY ...), whatever the default backend. */
  io<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options?: CacheOptions<A>): CachedFunction<A, R>;
}

// One CachekitIO backend (and connection pool) per environment configuration.
const ioBackends = new Map<string, CachekitIOBackend>();
function ioBackend(): CachekitIOBackend {
  const signature = JSON.stringify(Object.keys(process.env).filter((name) => name.startsWith('CACHEKIT_')).sort().map((name) => [name, process.env[name]]));
  let backend = ioBackends.get(signature);
  if (!backend) ioBackends.set(signature, (backend = CachekitIOBackend.fromEnv()));
  return backend;
}

/** Memoises an async function; see the module comment for keys, records and semantics. */
export const cache: CacheFn = Object.assign(makeCached, {
  minimal: <A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options: CacheOptions<A> = {}) =>
    makeCached(fn, { breaker: false, lock: false, ...options }),
  production: <A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options: CacheOptions<A> = {}) =>
    makeCached(fn, { breaker: true, lock: true, ...options }),
  io: <A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, options: CacheOptions<A> = {}) =>
    makeCached(fn, { breaker: true, lock: true, ...options, backend: options.backend ?? ioBackend() }),
});
