/**
 * The loader core: single-flight per process, cross-instance locks, stale-while-revalidate, tags and L1 coherence over
 * one RecordStore. `cache(fn)` and `cachedFetch` are thin wrappers over it.
 */
import { isProcessLocal } from '../stack/resolve.js';
import { BackendError, hasLocks, type Backend } from '../protocol/backend.js';
import type { CacheStack } from '../stack/stack.js';
import { sharedBus, type CoherenceBus } from '../store/coherence.js';
import type { Encryptor } from '../wire/encryption.js';
import { backendKeyPrefix } from '../store/sealed.js';
import { warnRateLimited } from '../shared/log.js';
import { ConfigError } from '../shared/options.js';
import { interopStore, plainStore, preloadRecordFormat, sealedStore, type RecordStore, type StoredRecord, type TieredSettings } from '../store/record-store.js';
import { lookupFresh } from '../store/fresh-read.js';
import type { L2Guard } from '../store/l2-guard.js';
import { backendTypeOf, type HitSource } from '../store/tiered.js';
import { UnstorableValueError } from '../wire/typed-value.js';
import { nowMs } from '../shared/clock.js';
import { backendName, spanAttributes } from '../observe/labels.js';
import { autoTrace } from '../observe/tracing.js';
import { lookup, traced } from '../shared/telemetry.js';

import type { CacheOptions } from './types.js';
import { COMPONENT } from './options.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

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
  /** L1 lifetime over shared backends without invalidation messages: how long another instance's write can go unseen. */
  coherenceTtlSeconds: number;
}

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
    // The records' envelope (its checksum is WebAssembly) loads now, while the app starts, not in its first call.
    if (!settings.interop) preloadRecordFormat();
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
    // L2 faults of the bus are reported as every L2 fault is: by the store's guard (set below, before any call).
    let guard: L2Guard | undefined;
    const bus = backend ? sharedBus(backend, settings.channel, (error, operation) => guard?.report(error, operation, settings.channel)) : null;
    const local = backend === null || isProcessLocal(backend);
    let l1 = settings.l1;
    // Writes nobody announces: other instances over a backend without messages, and Python services in interop mode.
    if (l1 !== false && !local && (!bus?.coherent || settings.interop) && l1.maxTtlSeconds === undefined) {
      l1 = { ...l1, maxTtlSeconds: settings.coherenceTtlSeconds };
    }
    const tieredSettings = { ...settings, backend, l1 };
    const store = settings.interop
      ? interopStore(tieredSettings, settings.encryption ?? null)
      : settings.encryption
        ? sealedStore(tieredSettings, settings.encryption)
        : plainStore(tieredSettings);
    guard = store.tiered.guard;
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
    let synced = bus?.synced();
    // A tagged entry's verdict waits for the stack's epoch read (and tag states) as well: started now, not after the entry.
    if (synced && policy.tags.length > 0) this.#syncTags(policy.tags);
    // Awaited first when the L1 holds the key (a copy to check) or while the first read sets the baseline (it flushes
    // the L1: a read racing it is not kept). Otherwise the L2 read runs beside it: it starts after this request began,
    // and a change the epoch read reports marks it stale (TieredCache flights), so the L1 never keeps an old value.
    if (synced && (bus!.started() !== undefined || this.#w.store.tiered.hasLocal(key))) {
      await synced;
      synced = undefined;
    }
    autoTrace();
    return traced(
      'cachekit.loader',
      () => spanAttributes('loader', key),
      () => this.#get(key, compute, policy, tenant, synced),
      () => this.#w.store.tiered.hasLocal(key),
    );
  }

  /**
   * Starts what the verdict of `tags` waits for (the stack's epoch read, then the tag states it lacks), beside the entry
   * read rather than after it. Shared with the verdict's own calls; its faults are reported by the verdict.
   */
  #syncTags(tags: readonly string[]): void {
    const source = this.#settings.stack;
    if (!source) return;
    const ignore = () => {};
    try {
      const stack = typeof source === 'function' ? source() : source;
      if (stack instanceof Promise) stack.then((resolved) => resolved.tagVerdict(tags, 0)).catch(ignore);
      else stack.tagVerdict(tags, 0).catch(ignore);
    } catch {
      // No stack: the verdict reports it.
    }
  }

  /** Deletes `key` everywhere: L1, L2, and the L1 of other instances. */
  async delete(key: string): Promise<boolean> {
    const { store, bus } = await this.#ready();
    const deleted = await store.tiered.delete(key);
    await bus?.announceKeys([key]);
    return deleted;
  }

  /** `pending`: the epoch read this request needs, still running (the L1 held no copy when the call began). */
  async #get(key: string, compute: () => Promise<unknown>, policy: Policy, tenant: string, pending?: Promise<void>): Promise<Outcome> {
    const started = performance.now();
    const found = await this.#read(key, policy, tenant, pending);
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

  /** The stored record and whether it is fresh, stale (servable while refreshing) or a miss: the shared read rule. */
  async #read(key: string, policy: Policy, tenant: string, pending?: Promise<void>): Promise<Found | null> {
    const store = this.#w.store;
    const plain = (k: string) => store.lookup(k, tenant);
    // An L1 copy that appeared meanwhile (another call's read) is trusted only after the epoch read: then looked up again.
    const checked = async (k: string) => {
      const hit = await plain(k);
      if (hit?.source !== 'l1' || !pending) return hit;
      await pending;
      pending = undefined;
      return plain(k);
    };
    const source = { lookup: pending ? checked : plain, invalidateLocal: (k: string) => store.tiered.invalidateLocal(k) };
    const read = await lookupFresh(source, key, ({ record }) => this.#judge(record, policy));
    return read && { record: read.hit.record, source: read.hit.source, state: read.verdict };
  }

  /** Fresh until `f`, stale (served while refreshing) for `staleTtl` more, then a miss; a tag event can only shorten that. */
  #judge(record: StoredRecord, policy: Policy): Found['state'] | Promise<Found['state']> {
    const now = nowMs();
    const state: Found['state'] = now < record.f ? 'fresh' : now < record.f + policy.staleTtl * 1000 ? 'stale' : 'miss';
    if (state === 'miss' || !record.t || record.t.length === 0) return state;
    // 'stale' from the tag store (revalidateTag with an expire duration) is served once while refreshing, like Next.
    return this.#tagVerdict(record.t, record.s).then((verdict) => (verdict === 'expired' ? 'miss' : verdict === 'stale' ? 'stale' : state));
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
      // After the first subscribe or epoch read, which flushes the L1: a copy made before it would be dropped at once.
      const started = this.#w.bus?.started();
      if (started) await started;
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
    if (stored && this.#w.bus?.messaging) void this.#w.bus.announceWritten([key]);
    return value;
  }

  async #acquire(key: string): Promise<string | null | 'none'> {
    const { backend, guard } = this.#w.store.tiered;
    if (!this.#settings.lock || !backend || !hasLocks(backend)) return 'none';
    try {
      // Within the store's deadline and breaker, as every L2 call: a lock service that hangs must not hang the call.
      return await guard.call('acquireLock', () => backend.acquireLock(key, this.#settings.lockTimeoutMs));
    } catch (error) {
      // Without the lock service, compute unlocked (a stampede is better than no answer).
      guard.report(error, 'acquireLock', key);
      return 'none';
    }
  }

  async #release(key: string, token: string): Promise<void> {
    const { backend, guard } = this.#w.store.tiered;
    if (!backend || !hasLocks(backend)) return;
    try {
      await guard.call('releaseLock', () => backend.releaseLock(key, token));
    } catch (error) {
      // The lease expires on its own.
      guard.report(error, 'releaseLock', key);
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
 * A fault of the loader itself (not of an L2 call: those are reported by the store's L2 guard) turned into an answer:
 * to `onError` when given, else logged (rate limited). A value that was not stored is always logged, naming the
 * function and the path inside the value: it is a bug to fix in the code.
 */
export function report(error: unknown, operation: string, key: string, settings?: Pick<CoreSettings, 'name' | 'onError'>): void {
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
