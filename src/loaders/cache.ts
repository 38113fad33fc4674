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
 * envelope, the value encoded so a hit returns what the miss returned, type for type (value-codec.ts; a value that
 * cannot come back as it is, e.g. with a function inside, is returned but not stored, and reported); encrypted with
 * `encryption` / `cache.secure`; or, with `interop`, the bare value as a Python cachekit service writes it.
 *
 * Inside a Next app, the default backend, key prefix and namespace are the Next handlers' (one app, one store).
 *
 * Writes and `invalidate()` are announced on the backend's invalidation channel (Redis pub/sub): other instances drop
 * their L1 copy at once. Over backends without messages they bump the invalidation epoch (epoch.ts), which a call
 * reads once per Next request (at most once per second outside one) before it trusts its L1 copy.
 */
import { cachekitIOFromEnv, isProcessLocal, resolveBackend } from '../stack/resolve.js';
import { BackendError, hasLocks, type Backend } from '../protocol/backend.js';
import { configuredOptions, configuredStack, defaultNamespace, OPTIONS_ENV, type CacheStack } from '../stack/stack.js';
import { sharedBus, type CoherenceBus } from '../store/coherence.js';
import { Encryptor, type EncryptionOptions } from '../wire/encryption.js';
import { interopKey, interopSegmentProblem } from '../wire/interop.js';
import { backendKeyPrefix } from '../store/sealed.js';
import { warnRateLimited } from '../shared/log.js';
import { objectId } from '../shared/identity.js';
import { ArgumentKeyError, hashArgs } from '../wire/loader-key.js';
import { assertKnownOptions, ConfigError, numberOption, stringOption } from '../shared/options.js';
import { interopStore, plainStore, sealedStore, type RecordStore, type StoredRecord, type TieredSettings } from '../store/record-store.js';
import { backendTypeOf, type ErrorContext, type HitSource } from '../store/tiered.js';
import { UnstorableValueError } from '../wire/value-codec.js';
import { nowMs } from '../shared/clock.js';
import { backendName, spanAttributes } from '../observe/labels.js';
import { lookup, traced } from '../shared/telemetry.js';
import { autoTrace } from '../observe/tracing.js';

export interface CacheOptions<A extends unknown[] = unknown[]> {
  /** Seconds an entry is fresh (and, without `staleTtl`, stored). @default 300 */
  ttl?: number;
  /** Seconds after `ttl` during which the old value is served while one background call refreshes it. @default 0 */
  staleTtl?: number;
  /** Tags of every entry; `stack.revalidateTags` (Next `revalidateTag`/`updateTag`) on one of them invalidates it. */
  tags?: readonly string[];
  /**
   * Pages whose `revalidatePath(path)` invalidates the entries (added as Next's implicit tag of the path, `_N_T_/...`).
   * A layout-wide `revalidatePath(path, 'layout')` needs the path with `/layout` appended, as in Next.
   */
  paths?: readonly string[];
  /** Key scope. @default the namespace of a `stack` object passed, else 'default' */
  namespace?: string;
  /** Prefix of every key. @default the keyPrefix of a `stack` object passed, else 'cachekit:' */
  keyPrefix?: string;
  /** Function name in the key. @default fn.name (required for anonymous functions without `key`) */
  name?: string;
  /** Explicit key (replaces the argument hash): a string, or a function of the arguments. */
  key?: string | ((...args: A) => string);
  /**
   * The L2; `null` = L1 only.
   * @default the `stack`'s backend when one is given; inside a Next app the handlers'; else setDefaultBackend > environment
   */
  backend?: Backend | null;
  /**
   * L1 in front of the backend, or `false`. Writes and `invalidate()` reach other instances' L1 at once over a backend
   * with invalidation messages (Redis), and at their next request's read of the invalidation epoch over others (at
   * most 1 s later outside a Next request); `maxTtlSeconds` bounds an L1 copy's life on top. Tag invalidations reach
   * every instance through the tag store either way.
   * @default { maxTtlSeconds: the entry's TTL (1 s with `interop`, or a backend that has neither messages nor epoch) }
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
   * Tag store of `tags`: a cache stack (e.g. `getStack(options)`), or a function returning one.
   * @default with tags, the Next handlers' stack (`configuredStack()`): Next's revalidateTag/updateTag reach entries
   */
  stack?: CacheStack | (() => CacheStack | Promise<CacheStack>);
  /**
   * Encrypts entries (AES-256-GCM, per-tenant keys by HKDF, AAD = tenant + key): an `Encryptor`, or its options, each
   * falling back to CACHEKIT_MASTER_KEY, CACHEKIT_PREVIOUS_MASTER_KEYS and CACHEKIT_ENCRYPTION_FAIL_CLOSED. The L1 then
   * keeps ciphertext. `cache.secure` sets it. @default none
   */
  encryption?: Encryptor | Partial<EncryptionOptions>;
  /** Tenant of the encryption keys: a string, or a function of the arguments. @default 'default' */
  tenant?: string | ((...args: A) => string);
  /**
   * Shares entries with a Python cachekit service in interop mode: key `{namespace}:{operation}:{blake2b args hash}`
   * (no prefix), value one plain canonical MessagePack document (encrypted with `encryption` as cachekit does).
   * Freshness is the backend TTL only, so `tags`, `paths`, `staleTtl` and `key` do not apply. Python services do
   * not announce their writes and deletes: an L1 copy is trusted `l1.maxTtlSeconds`, 1 s by default.
   */
  interop?: { namespace: string; operation?: string };
  /**
   * Receives every fault turned into a miss or a skipped write: backend errors (`BackendError`) and values that were
   * not stored because a hit could not return them as they are (`UnstorableValueError`, also always logged).
   * @default backend faults are logged, rate limited
   */
  onError?: (error: Error, context: ErrorContext) => void;
}

/** How a call was answered. */
export type CacheStatus = 'l1' | 'l2' | 'miss';

export interface CacheResult<R> {
  value: R;
  /** L1 hit, L2 hit, or miss (the function ran). A caller that joined an in-flight call gets that call's status. */
  status: CacheStatus;
  /** Served stale while one background call refreshes (`staleTtl`, or a tag revalidated with an expire duration). */
  stale: boolean;
  /** Milliseconds this call took. */
  ms: number;
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
  /** The L2 in use (`redis`, `file`, `memcached`, `cachekitio`, `memory`, `custom`, or `none` for L1 only). */
  backend: string;
}

export type CachedFunction<A extends unknown[], R> = ((...args: A) => Promise<Awaited<R>>) & {
  /** Deletes the entry of these arguments (L1 and L2; other instances drop their L1 copy, see `l1`). */
  invalidate(...args: A): Promise<boolean>;
  /** Calls like the function itself, also telling how the call was answered (L1 hit, L2 hit or miss) and how fast. */
  detailed(...args: A): Promise<CacheResult<Awaited<R>>>;
  info(): CacheInfo;
  /** The storage key of these arguments. */
  keyFor(...args: A): string;
};

const KNOWN = [
  'ttl',
  'staleTtl',
  'tags',
  'paths',
  'encryption',
  'tenant',
  'interop',
  'namespace',
  'keyPrefix',
  'name',
  'key',
  'backend',
  'l1',
  'lock',
  'lockTimeoutMs',
  'lockWaitMs',
  'breaker',
  'timeoutMs',
  'stack',
  'onError',
];
const COMPONENT = 'cache';
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export { hashArgs };

/** Per-call policy of the shared machinery. */
export interface Policy {
  ttl: number;
  staleTtl: number;
  tags: readonly string[];
  /** `false`: return the value without storing it (e.g. an error response). */
  store?: (value: unknown) => boolean;
}

/** The outcome of one call inside the core. */
interface Outcome {
  value: unknown;
  status: 'l1' | 'l2' | 'miss';
  stale: boolean;
}

type Found = { record: StoredRecord; source: HitSource; state: 'fresh' | 'stale' | 'miss' };

/** Settings of a core: where and how records are stored, plus the stampede and tag machinery. */
export interface CoreSettings extends Omit<TieredSettings, 'backend'> {
  /** The L2, or a function resolving it on first use (the Next handlers' backend, possibly a module to import). */
  backend: Backend | null | (() => Backend | null | Promise<Backend | null>);
  lock: boolean;
  lockTimeoutMs: number;
  lockWaitMs: number;
  stack?: CacheOptions['stack'];
  /** Invalidation channel of writes and deletes (announced when the backend carries messages). */
  channel: string;
  encryption?: Encryptor;
  interop?: boolean;
}

/** L1 lifetime over shared backends without invalidation messages: how long another instance's write can go unseen. */
const UNANNOUNCED_L1_TTL_SECONDS = 1;

/** The parts of a core that need its backend. */
interface Wired {
  store: RecordStore;
  bus: CoherenceBus | null;
  backendType: string;
}

/** Single-flight, locks, SWR, tags and L1 coherence over one RecordStore (used by `cache` and `cachedFetch`). */
export class CachedCore {
  readonly #settings: CoreSettings;
  #wired: Wired | undefined;
  #wiring: Promise<Wired> | undefined;
  #busStarted = false;
  readonly #flights = new Map<string, Promise<Outcome>>();
  readonly #refreshing = new Set<string>();
  readonly stats = { hits: 0, misses: 0, l1Hits: 0, l2Hits: 0, calls: 0, lookups: 0, lookupMs: 0, computeMs: 0 };

  constructor(settings: CoreSettings) {
    this.#settings = settings;
    if (typeof settings.backend !== 'function') this.#wired = this.#wire(settings.backend);
  }

  /** The L2's type (`redis`, `file`, ...), or `unresolved` before the first call resolved a lazily chosen backend. */
  get backendType(): string {
    return this.#wired?.backendType ?? 'unresolved';
  }

  #wire(backend: Backend | null): Wired {
    const settings = this.#settings;
    if (settings.interop && backendKeyPrefix(backend) !== '') {
      // Interop keys are the same bytes in every SDK: a prefix would hide our entries from Python and theirs from us.
      throw new ConfigError(
        COMPONENT,
        'backend',
        `must have no keyPrefix with \`interop\` (got ${JSON.stringify(backendKeyPrefix(backend))}): interop keys are shared verbatim across SDKs; give interop loaders a backend without one`,
      );
    }
    const bus = backend ? sharedBus(backend, settings.channel, (error, operation) => report(error, operation, settings.channel, settings)) : null;
    const local = backend === null || isProcessLocal(backend);
    let l1 = settings.l1;
    // Writes nobody announces: other instances over a backend without messages, and Python services in interop mode.
    if (l1 !== false && !local && (!bus?.coherent || settings.interop) && l1.maxTtlSeconds === undefined) {
      l1 = { ...l1, maxTtlSeconds: UNANNOUNCED_L1_TTL_SECONDS };
    }
    const tieredSettings = { ...settings, backend, l1 };
    const store = settings.interop
      ? interopStore(tieredSettings, settings.encryption ?? null)
      : settings.encryption
        ? sealedStore(tieredSettings, settings.encryption)
        : plainStore(tieredSettings);
    if (bus?.coherent) {
      // Weakly: a wrapper that is dropped (created per request by mistake) must not stay alive through the bus.
      const ref = new WeakRef(store.tiered);
      const unlisten = bus.listen({
        keys: (keys) => {
          const tiered = ref.deref();
          if (!tiered) return void unlisten();
          for (const key of keys) tiered.invalidateLocal(key);
        },
        tags: () => {},
        flush: () => {
          const tiered = ref.deref();
          if (!tiered) return void unlisten();
          tiered.clearLocal();
        },
      });
    }
    return { store, bus, backendType: backendTypeOf(backend) };
  }

  /** The wired parts, resolving the backend on first use. A resolution that fails is retried by the next call. */
  #ready(): Wired | Promise<Wired> {
    if (this.#wired) return this.#wired;
    const resolve = this.#settings.backend as () => Backend | null | Promise<Backend | null>;
    return (this.#wiring ??= Promise.resolve()
      .then(resolve)
      .then((backend) => (this.#wired = this.#wire(backend)))
      .finally(() => (this.#wiring = undefined)));
  }

  /** After #ready(). */
  get #w(): Wired {
    return this.#wired!;
  }

  /** The cached value of `key`, computing it (once per process, once across instances with locks) on a miss. */
  async run(key: string, compute: () => Promise<unknown>, policy: Policy, tenant = 'default'): Promise<unknown> {
    return (await this.runDetailed(key, compute, policy, tenant)).value;
  }

  runDetailed(key: string, compute: () => Promise<unknown>, policy: Policy, tenant = 'default'): Promise<Outcome> {
    const flight = this.#flights.get(key);
    if (flight) {
      this.stats.hits++;
      return flight;
    }
    const created = this.#start(key, compute, policy, tenant).finally(() => this.#flights.delete(key));
    this.#flights.set(key, created);
    return created;
  }

  async #start(key: string, compute: () => Promise<unknown>, policy: Policy, tenant: string): Promise<Outcome> {
    try {
      // Only the first calls of a lazily resolved backend wait; afterwards no extra turn of the event loop.
      if (!this.#wired) await this.#ready();
    } catch (error) {
      if (this.#settings.interop && error instanceof ConfigError) throw error; // a prefixed backend: refused loudly
      // No backend (its module failed to load): the call is answered, uncached; the next call tries again.
      report(error, 'backend', key, this.#settings);
      this.stats.misses++;
      return { value: await this.#timedCompute(compute), status: 'miss', stale: false };
    }
    const bus = this.#w.bus;
    if (!this.#busStarted && bus) {
      this.#busStarted = true;
      void bus.start();
    }
    // Without messages: the invalidation epoch read this request (or the age bound) needs before the L1 is trusted.
    const synced = bus?.synced();
    if (synced) await synced;
    autoTrace();
    return traced(
      'cachekit.loader',
      () => spanAttributes('loader', key),
      () => this.#get(key, compute, policy, tenant),
    );
  }

  /** Deletes `key` everywhere: L1, L2, and the L1 of other instances. */
  async delete(key: string): Promise<boolean> {
    const { store, bus } = await this.#ready();
    const deleted = await store.tiered.delete(key);
    await bus?.announceKeys([key]);
    return deleted;
  }

  async #get(key: string, compute: () => Promise<unknown>, policy: Policy, tenant: string): Promise<Outcome> {
    const started = performance.now();
    const found = await this.#read(key, policy, tenant);
    this.stats.lookups++;
    this.stats.lookupMs += performance.now() - started;
    if (found && found.state !== 'miss') {
      this.stats.hits++;
      if (found.source === 'l1') this.stats.l1Hits++;
      else this.stats.l2Hits++;
      if (found.state === 'stale') this.#refreshInBackground(key, compute, policy, tenant);
      lookup('loader', found.state === 'stale' ? 'stale' : 'hit', found.source, backendName(this.#w.store.tiered.backend), key, started, null);
      return { value: found.record.v, status: found.source, stale: found.state === 'stale' };
    }
    this.stats.misses++;
    lookup('loader', 'miss', 'none', backendName(this.#w.store.tiered.backend), key, started, null);
    return { value: await this.#computeLocked(key, compute, policy, tenant), status: 'miss', stale: false };
  }

  /** The stored record and whether it is fresh, stale (servable while refreshing) or a miss. */
  async #read(key: string, policy: Policy, tenant: string, retry = true): Promise<Found | null> {
    const found = await this.#readOnce(key, policy, tenant);
    if (retry && found && found.state !== 'fresh' && found.source === 'l1') {
      // This process's copy is stale or dead (tag event, past its time); another instance may have stored a newer one.
      this.#w.store.tiered.invalidateLocal(key);
      return this.#read(key, policy, tenant, false);
    }
    return found;
  }

  async #readOnce(key: string, policy: Policy, tenant: string): Promise<Found | null> {
    const hit = await this.#w.store.lookup(key, tenant);
    if (!hit) return null;
    const { record, source } = hit;
    const now = nowMs();
    let state: Found['state'] = now < record.f ? 'fresh' : now < record.f + policy.staleTtl * 1000 ? 'stale' : 'miss';
    if (state !== 'miss' && record.t && record.t.length > 0) {
      const verdict = await this.#tagVerdict(record.t, record.s);
      // 'stale' from the tag store (revalidateTag with an expire duration) is served once while refreshing, like Next.
      if (verdict === 'expired') state = 'miss';
      else if (verdict === 'stale') state = 'stale';
    }
    return { record, source, state };
  }

  async #tagVerdict(tags: readonly string[], storedAt: number): Promise<'fresh' | 'stale' | 'expired'> {
    const stack = await this.#resolveStack();
    if (!stack) return 'fresh';
    try {
      return await stack.tagVerdict(tags, storedAt);
    } catch (error) {
      stack.report(error, 'cache.tags');
      return 'fresh';
    }
  }

  async #resolveStack(): Promise<CacheStack | null> {
    const source = this.#settings.stack;
    if (!source) return null;
    return typeof source === 'function' ? await source() : source;
  }

  async #timedCompute(compute: () => Promise<unknown>): Promise<unknown> {
    const started = performance.now();
    this.stats.calls++;
    try {
      return await compute();
    } finally {
      this.stats.computeMs += performance.now() - started;
    }
  }

  async #computeAndStore(key: string, compute: () => Promise<unknown>, policy: Policy, tenant: string): Promise<unknown> {
    const storedAt = nowMs();
    const value = await this.#timedCompute(compute);
    if (policy.store && !policy.store(value)) return value;
    const record: StoredRecord = {
      // First: readers find the expiry without decoding the value (record-store.ts, peekExpiry).
      e: storedAt + (policy.ttl + policy.staleTtl) * 1000,
      v: value,
      s: storedAt,
      f: storedAt + policy.ttl * 1000,
      ...(policy.tags.length ? { t: [...policy.tags] } : {}),
    };
    let stored: boolean;
    try {
      stored = await this.#w.store.set(key, record, tenant, policy.ttl + policy.staleTtl);
    } catch (error) {
      // A value a hit could not return as it is (a function inside, a class instance; interop's canonical MessagePack
      // refuses more): served, not stored, reported.
      report(error, 'encode', key, this.#settings);
      return value;
    }
    // Not awaited: the caller has its value; other instances hear of it within a round trip. Over the epoch (no
    // messages) a fill is not announced: another instance's copy of a key that was missing here expired or was
    // deleted (announced) too, and a stale copy is checked against the L2 before it is served.
    if (stored && this.#w.bus?.messaging) void this.#w.bus.announceKeys([key]);
    return value;
  }

  async #acquire(key: string): Promise<string | null | 'none'> {
    const backend = this.#w.store.tiered.backend;
    if (!this.#settings.lock || !backend || !hasLocks(backend)) return 'none';
    try {
      return await backend.acquireLock(key, this.#settings.lockTimeoutMs);
    } catch (error) {
      // Without the lock service, compute unlocked (a stampede is better than no answer).
      report(error, 'acquireLock', key, this.#settings);
      return 'none';
    }
  }

  async #release(key: string, token: string): Promise<void> {
    const backend = this.#w.store.tiered.backend;
    if (!backend || !hasLocks(backend)) return;
    try {
      await backend.releaseLock(key, token);
    } catch (error) {
      // The lease expires on its own.
      report(error, 'releaseLock', key, this.#settings);
    }
  }

  async #computeLocked(key: string, compute: () => Promise<unknown>, policy: Policy, tenant: string): Promise<unknown> {
    let token = await this.#acquire(key);
    if (token === 'none') return this.#computeAndStore(key, compute, policy, tenant);
    const deadline = nowMs() + this.#settings.lockWaitMs;
    let delay = 10;
    while (token === null) {
      if (nowMs() >= deadline) return this.#computeAndStore(key, compute, policy, tenant);
      await sleep(Math.min(delay, Math.max(1, deadline - nowMs())));
      delay = Math.min(delay * 1.5, 250);
      // Another instance may have written meanwhile; the L1 holds nothing for this key (it was a miss).
      const found = await this.#read(key, policy, tenant);
      if (found && found.state === 'fresh') return found.record.v;
      // The holder finished without storing, or crashed and its lease expired: take over.
      token = await this.#acquire(key);
      if (token === 'none') return this.#computeAndStore(key, compute, policy, tenant);
    }
    try {
      // The previous holder may have written between our read and our lock.
      const found = await this.#read(key, policy, tenant);
      if (found && found.state === 'fresh') return found.record.v;
      return await this.#computeAndStore(key, compute, policy, tenant);
    } finally {
      await this.#release(key, token);
    }
  }

  #refreshInBackground(key: string, compute: () => Promise<unknown>, policy: Policy, tenant: string): void {
    if (this.#refreshing.has(key)) return;
    this.#refreshing.add(key);
    void (async () => {
      const token = await this.#acquire(key);
      if (token === null) return; // another instance refreshes
      try {
        // Another instance may have refreshed between our stale read and our lock.
        if ((await this.#read(key, policy, tenant))?.state === 'fresh') return;
        await this.#computeAndStore(key, compute, policy, tenant);
      } finally {
        if (token !== 'none') await this.#release(key, token);
      }
    })()
      .catch((error: unknown) => report(error, 'refresh', key, this.#settings))
      .finally(() => this.#refreshing.delete(key));
  }
}

/**
 * A fault turned into a miss or a skipped write: to `onError` when given, else logged (rate limited). A value that was
 * not stored is always logged, naming the function and the path inside the value: it is a bug to fix in the code.
 */
function report(error: unknown, operation: string, key: string, settings?: Pick<CoreSettings, 'name' | 'onError'>): void {
  const message = BackendError.is(error) ? error.message : `${(error as Error)?.message ?? String(error)}`;
  if (error instanceof UnstorableValueError) {
    warnRateLimited(
      `cache:unstorable:${settings?.name}:${error.path}`,
      `[cachekit] ${settings?.name ?? 'cache'}: value not stored (a hit could not return it as it is): ${message}; key ${key}`,
    );
  } else if (!settings?.onError) {
    warnRateLimited(`cache:${operation}:${message}`, `[cachekit] cache ${operation} ${key}: ${message}`);
  }
  try {
    settings?.onError?.(error instanceof Error ? error : new Error(message), { operation, key, cache: settings.name });
  } catch {
    // A throwing onError hook must not turn a cache fault into a failed call.
  }
}

/** Next's implicit tag of a page path, the one `revalidatePath(path)` invalidates (`_N_T_/blog/post`). */
export function pathTag(path: string): string {
  if (typeof path !== 'string' || !path.startsWith('/')) throw new ConfigError(COMPONENT, 'paths', `entries must start with "/", got ${JSON.stringify(path)}`);
  // As Next: trailing slash removed (but "/" stays), characters outside printable ASCII percent-encoded.
  const trimmed = path.length > 1 ? path.replace(/\/+$/, '') || '/' : path;
  return `_N_T_${trimmed.replace(/[^\t\x20-\x7e]+/g, (run) => encodeURIComponent(run))}`;
}

function encryptorOf(option: CacheOptions['encryption']): Encryptor | undefined {
  if (option === undefined) return undefined;
  if (option instanceof Encryptor) return option;
  if (option === null || typeof option !== 'object')
    throw new ConfigError(COMPONENT, 'encryption', 'must be an Encryptor or its options ({ masterKey, previousMasterKeys, failClosed })');
  assertKnownOptions(`${COMPONENT}.encryption`, option, ['masterKey', 'previousMasterKeys', 'failClosed']);
  const encryptor = Encryptor.fromEnv(process.env, option);
  if (!encryptor) throw new ConfigError(COMPONENT, 'encryption.masterKey', 'is required: pass it, or set CACHEKIT_MASTER_KEY (hex, at least 32 bytes)');
  return encryptor;
}

/**
 * Inside a Next.js process (`next build` workers, `next start`, or wherever withCachekit's options are set), entries
 * default to the Next handlers' store and scope, so one app has one cache.
 */
function insideNext(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env[OPTIONS_ENV] || env.NEXT_PHASE || env.__NEXT_PRIVATE_ORIGIN);
}

/**
 * The L2 when `backend` is not given: a given stack's (e.g. `CacheHandler.stack` of a handler module of your
 * own), inside Next the handlers', else `setDefaultBackend` and the environment.
 */
function defaultBackend(options: CacheOptions<never[]>): CoreSettings['backend'] {
  if (options.backend !== undefined) return resolveBackend(options.backend);
  const stack = options.stack;
  if (stack !== undefined) return typeof stack === 'function' ? async () => (await stack()).backend : stack.backend;
  if (insideNext()) return async () => (await configuredStack()).backend;
  return resolveBackend(undefined);
}

/** Default key prefix and namespace: a `stack` passed, else the Next handlers' inside Next, else cachekit's. */
export function defaultScope(options: Pick<CacheOptions<never[]>, 'stack'>): { keyPrefix: string; namespace: string } {
  const stack = options.stack && typeof options.stack !== 'function' ? options.stack : undefined;
  if (stack) return { keyPrefix: stack.keyPrefix, namespace: stack.namespace };
  if (insideNext()) {
    const configured = configuredOptions();
    return { keyPrefix: configured.keyPrefix ?? 'cachekit:', namespace: configured.namespace ?? defaultNamespace() };
  }
  return { keyPrefix: 'cachekit:', namespace: 'default' };
}

/** Validated options shared by `cache` and `cachedFetch`. */
export function coreOptions(options: CacheOptions<never[]>, name: string, extra: { encryption?: Encryptor; interop?: boolean } = {}): CoreSettings {
  const lockTimeoutMs = numberOption(COMPONENT, 'lockTimeoutMs', options.lockTimeoutMs, 10_000, { min: 0, minInclusive: false });
  const keyPrefix = stringOption(COMPONENT, 'keyPrefix', options.keyPrefix, defaultScope(options).keyPrefix);
  if (options.l1 !== undefined && options.l1 !== false && (options.l1 === null || typeof options.l1 !== 'object')) {
    throw new ConfigError(COMPONENT, 'l1', 'must be { maxSizeMb, maxTtlSeconds } or false');
  }
  if (options.onError !== undefined && typeof options.onError !== 'function') throw new ConfigError(COMPONENT, 'onError', 'must be a function');
  return {
    backend: defaultBackend(options),
    l1: options.l1 ?? {},
    lock: options.lock ?? true,
    lockTimeoutMs,
    lockWaitMs: numberOption(COMPONENT, 'lockWaitMs', options.lockWaitMs, lockTimeoutMs, { min: 0 }),
    breaker: options.breaker ?? true,
    timeoutMs: numberOption(COMPONENT, 'timeoutMs', options.timeoutMs, 5_000, { min: 0, minInclusive: false }),
    // Tagged entries without an explicit stack use the Next handlers' one (CACHEKIT_NEXT_OPTIONS, what withCachekit
    // sets), so revalidateTag/updateTag in the app reach them.
    stack: options.stack ?? (options.tags?.length || options.paths?.length ? () => configuredStack() : undefined),
    channel: `${keyPrefix}fn:invalidate`,
    name,
    ...(options.onError ? { onError: options.onError } : {}),
    ...extra,
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
  const paths = options.paths ?? [];
  if (!Array.isArray(paths)) throw new ConfigError(COMPONENT, 'paths', 'must be an array of page paths ("/blog")');
  if (options.stack !== undefined && (options.stack === null || (typeof options.stack !== 'function' && typeof options.stack !== 'object'))) {
    throw new ConfigError(COMPONENT, 'stack', 'must be a CacheStack or a function returning one');
  }
  return { ttl, staleTtl, tags: [...new Set([...tags, ...paths.map(pathTag)])] };
}

/** The interop operation name, checked against the segment rule (Python cachekit's, so both derive one key). */
function interopSettings<A extends unknown[]>(options: CacheOptions<A>, fnName: string): { namespace: string; operation: string } | undefined {
  const interop = options.interop;
  if (interop === undefined) return undefined;
  if (interop === null || typeof interop !== 'object') throw new ConfigError(COMPONENT, 'interop', 'must be { namespace, operation }');
  assertKnownOptions(`${COMPONENT}.interop`, interop, ['namespace', 'operation']);
  const operation = interop.operation ?? fnName;
  for (const [kind, value] of [
    ['namespace', interop.namespace],
    ['operation', operation],
  ] as const) {
    const problem = interopSegmentProblem(kind, value);
    if (problem) throw new ConfigError(COMPONENT, `interop.${kind}`, problem);
  }
  // Entries a Python service writes carry no stored-at time or tags, and their key is derived, never chosen.
  for (const option of ['tags', 'paths', 'staleTtl', 'key', 'namespace'] as const) {
    if (options[option] !== undefined)
      throw new ConfigError(COMPONENT, option, 'does not apply with `interop` (entries are plain values; freshness is the backend TTL)');
  }
  return { namespace: interop.namespace, operation };
}

// Process-wide, across copies of this module: Next bundles a module-scope `cache(fn)` into every route that imports it.
const CORES = Symbol.for('cachekit-next.cachedCores');

/**
 * The core of a configuration, one per process: every copy of a wrapper (one per route bundle) shares its L1,
 * single-flight and statistics and hears the others' writes. `create` runs only for a configuration not seen yet.
 */
export function sharedCore(signature: readonly unknown[], create: () => CoreSettings): CachedCore {
  const holder = globalThis as { [CORES]?: Map<string, WeakRef<CachedCore>> };
  const cores = (holder[CORES] ??= new Map());
  const key = JSON.stringify(signature);
  const existing = cores.get(key)?.deref();
  if (existing) return existing;
  const core = new CachedCore(create());
  cores.set(key, new WeakRef(core));
  return core;
}

/** What makes two `cache(fn)` cores the same: key scope, backend, tag stack, encryption key and every setting. */
function cacheSignature(scope: string, options: CacheOptions<never[]>, settings: CoreSettings): unknown[] {
  const backend = typeof settings.backend === 'function' ? 'resolved-later' : settings.backend === null ? 'none' : objectId(settings.backend);
  // Tagged wrappers check tags through a stack, untagged ones need none: they must not share a core.
  const stack = options.stack !== undefined ? objectId(options.stack) : settings.stack ? 'configured' : 'none';
  const encryption = settings.encryption ? [settings.encryption.fingerprint('').toString('hex'), settings.encryption.failClosed] : null;
  const onError = options.onError ? objectId(options.onError) : null;
  return [
    'cache',
    scope,
    backend,
    stack,
    encryption,
    settings.l1,
    settings.lock,
    settings.lockTimeoutMs,
    settings.lockWaitMs,
    settings.breaker,
    settings.timeoutMs,
    onError,
  ];
}

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
  const tenant = options.tenant ?? 'default';
  if ((typeof tenant !== 'string' || tenant === '') && typeof tenant !== 'function') {
    throw new ConfigError(COMPONENT, 'tenant', 'must be a non-empty string or a function of the arguments');
  }
  const scope = defaultScope(options as CacheOptions<never[]>);
  const keyPrefix = stringOption(COMPONENT, 'keyPrefix', options.keyPrefix, scope.keyPrefix);
  const namespace = stringOption(COMPONENT, 'namespace', options.namespace, scope.namespace);
  const encryption = encryptorOf(options.encryption);
  const settings = coreOptions(options as CacheOptions<never[]>, `cache:${name || 'fn'}`, { encryption, interop: interop !== undefined });
  const scopeOfKeys = interop ? `interop:${interop.namespace}:${interop.operation}` : `${keyPrefix}${namespace}:fn:${name}`;
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
    return `${keyPrefix}${namespace}:fn:${name}:${part}`;
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

/** The options of Next's `unstable_cache(fn, keyParts, options)`. */
export interface UnstableCacheOptions {
  /** Seconds until the value is stale (then served while one call refreshes it); `false`: until a tag says otherwise. */
  revalidate?: number | false;
  tags?: string[];
}

/** How long a value that never goes stale (`revalidate: false`) is kept, and how long a stale one is still served. */
const UNSTABLE_CACHE_KEEP_SECONDS = 30 * 24 * 3600;

/** `cache(fn, keyParts, { revalidate, tags })`, with Next's `unstable_cache` meaning, as `cache` options. */
function fromUnstableCacheForm<A extends unknown[]>(fn: (...args: A) => unknown, keyParts: unknown, options: unknown): CacheOptions<A> {
  if (keyParts !== undefined && (!Array.isArray(keyParts) || keyParts.some((part) => typeof part !== 'string'))) {
    throw new ConfigError(COMPONENT, 'keyParts', 'must be an array of strings (the unstable_cache form: cache(fn, keyParts, { revalidate, tags }))');
  }
  const parts = (keyParts ?? []) as string[];
  const given = (options ?? {}) as UnstableCacheOptions;
  assertKnownOptions(COMPONENT, given, ['revalidate', 'tags']);
  const name = [fn.name, ...parts].filter(Boolean).join(':');
  if (!name) throw new ConfigError(COMPONENT, 'keyParts', 'are required for an anonymous function: they scope its keys');
  const { revalidate } = given;
  if (revalidate !== undefined && revalidate !== false && !(typeof revalidate === 'number' && revalidate > 0 && Number.isFinite(revalidate))) {
    throw new ConfigError(COMPONENT, 'revalidate', `must be a number of seconds > 0 or false, got ${JSON.stringify(revalidate)}`);
  }
  return {
    name,
    ...(given.tags ? { tags: given.tags } : {}),
    ...(typeof revalidate === 'number' ? { ttl: revalidate, staleTtl: UNSTABLE_CACHE_KEEP_SECONDS } : { ttl: UNSTABLE_CACHE_KEEP_SECONDS }),
  };
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
