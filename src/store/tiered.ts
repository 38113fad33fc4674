import { LRUCache } from 'lru-cache';
import { BackendError, hasAdd, hasTtl, type Backend } from '../protocol/backend.js';
import type { BreakerOptions } from './breaker.js';
import { L2Guard, type ErrorHandler, type L2Operation } from './l2-guard.js';
import { record } from '../shared/telemetry.js';
import { Metrics, type MetricsSnapshot } from './metrics.js';
import { assertKnownOptions, ConfigError, DEFAULT_TIMEOUT_MS, numberOption } from '../shared/options.js';
import { nowMs } from '../shared/clock.js';
import { bytesSerializer, type Serializer } from '../wire/frame.js';
import { footprint, L1_ENTRY_OVERHEAD_BYTES, stringBytes } from './footprint.js';

export { backendTypeOf, type ErrorContext, type ErrorHandler } from './l2-guard.js';

export interface L1Options {
  /**
   * Byte budget of the in-memory L1, in MiB (the handlers and loaders default it from CACHEKIT_L1_MAX_SIZE_MB): what its
   * copies hold in memory, decoded (estimated from above, store/footprint.ts), not their stored size. @default 100
   */
  maxSizeMb?: number;
  /**
   * Longest time an entry stays in L1, in seconds, whatever its L2 TTL. This bounds how stale an instance can be
   * when it misses an invalidation message, and it is the L1 lifetime of entries the L2 cannot report a TTL for.
   * @default Infinity (entries follow their L2 TTL; backends without TTL inspection use 5 s)
   */
  maxTtlSeconds?: number;
}

export interface TieredCacheOptions<T> {
  /** The L2; `null` for L1-only. */
  backend: Backend | null;
  /** @default bytesSerializer (values are bytes) */
  serializer?: Serializer<T>;
  /** L1 settings, or `false` for no L1. */
  l1?: L1Options | false;
  /** Deadline for every L2 call in ms; past it the call counts as a timeout and the cache answers a miss. @default 1500 */
  timeoutMs?: number;
  /** Circuit breaker settings (shared per backend), or `false` for none. */
  breaker?: BreakerOptions | false;
  /** Called with every backend fault; the default logs them, rate limited. */
  onError?: ErrorHandler;
  /** An L2 guard to share (a stack's: one choke point for all its L2 calls); `timeoutMs`, `breaker` and `onError` are then its own. */
  guard?: L2Guard;
  /** Name used in logs and errors. @default 'cache' */
  name?: string;
  /**
   * When values carry their own expiry (epoch ms; `null` for none; `undefined` when it cannot be told, e.g. sealed
   * bytes): reads then skip asking the backend for the remaining TTL (a plain GET instead of GET + PTTL on Redis) and
   * bound the L1 copy by the value's expiry (unknown: 5 s, like backends without TTLs).
   */
  expiresAt?: (value: T) => number | null | undefined;
}

/** Where a lookup was answered. */
export type HitSource = 'l1' | 'l2';

interface L1Entry<T> {
  value: T;
  size: number;
}

interface Flight<T> {
  promise: Promise<{ value: T; source: HitSource } | null>;
  /** Set when a write, delete or invalidation raced the read: its result must not enter L1. */
  stale: boolean;
}

/**
 * L1 lifetime of a copy the L2 cannot vouch for: read from a backend that cannot report TTLs, or written here while
 * the L2 refused the write (the other instances never see that value: this one must not keep serving it for long).
 */
const UNKNOWN_TTL_L1_MS = 5_000;

/**
 * An in-memory L1 (lru-cache with a byte budget) in front of any L2 backend.
 *
 * - An L1 entry never outlives its L2 TTL: writes know it, reads use the backend's TTL capability when offered.
 * - Concurrent misses for one key in one process make one L2 call (single-flight).
 * - Backend faults never throw: reads become misses within `timeoutMs`, writes return `false`; both go to `onError`.
 */
export class TieredCache<T = Uint8Array> {
  readonly backend: Backend | null;
  readonly name: string;
  readonly #serializer: Serializer<T>;
  readonly #l1: LRUCache<string, L1Entry<T>> | null;
  readonly #maxL1TtlMs: number;
  /** Deadline, breaker and reporting of every L2 call. */
  readonly guard: L2Guard;
  readonly #flights = new Map<string, Flight<T>>();
  readonly #expiresAt: ((value: T) => number | null | undefined) | undefined;
  readonly metrics = new Metrics();

  constructor(options: TieredCacheOptions<T>) {
    const component = 'TieredCache';
    assertKnownOptions(component, options, ['backend', 'serializer', 'l1', 'timeoutMs', 'breaker', 'onError', 'guard', 'name', 'expiresAt']);
    if (options.backend === undefined) {
      throw new ConfigError(component, 'backend', 'is required (a Backend, or null for L1-only); use resolveBackend() for the default');
    }
    this.backend = options.backend;
    this.name = options.name ?? 'cache';
    this.#serializer = options.serializer ?? (bytesSerializer as unknown as Serializer<T>);
    this.#expiresAt = options.expiresAt;
    const timeoutMs = numberOption(component, 'timeoutMs', options.timeoutMs, DEFAULT_TIMEOUT_MS, { min: 0, minInclusive: false });
    this.guard =
      options.guard ??
      new L2Guard({
        backend: options.backend,
        timeoutMs,
        ...(options.breaker === undefined ? {} : { breaker: options.breaker }),
        ...(options.onError ? { onError: options.onError } : {}),
        name: this.name,
      });

    if (options.l1 === false) {
      if (options.backend === null) throw new ConfigError(component, 'l1', 'cannot be false when backend is null (nothing would be cached)');
      this.#l1 = null;
      this.#maxL1TtlMs = 0;
    } else {
      const l1 = options.l1 ?? {};
      assertKnownOptions(`${component}.l1`, l1, ['maxSizeMb', 'maxTtlSeconds']);
      const maxSizeMb = numberOption(component, 'l1.maxSizeMb', l1.maxSizeMb, 100, { min: 0, minInclusive: false });
      const maxTtlSeconds = numberOption(component, 'l1.maxTtlSeconds', l1.maxTtlSeconds, Infinity, { min: 0, minInclusive: false, allowInfinity: true });
      this.#maxL1TtlMs = maxTtlSeconds * 1000;
      const maxSize = Math.max(1, Math.floor(maxSizeMb * 1024 * 1024));
      this.#l1 = new LRUCache<string, L1Entry<T>>({
        maxSize,
        // A value larger than the whole budget is simply not kept (lru-cache refuses it).
        maxEntrySize: maxSize,
        sizeCalculation: (entry) => Math.max(1, entry.size),
        ttlAutopurge: false,
        allowStale: false,
        updateAgeOnGet: false,
        dispose: (_entry, _key, reason) => reason === 'evict' && record({ type: 'l1-eviction', cache: this.name }),
      });
    }
  }

  /** The value, or `null` on a miss (including a backend fault). */
  async get(key: string): Promise<T | null> {
    return (await this.lookup(key))?.value ?? null;
  }

  /** Like `get`, also telling where the value came from. */
  lookup(key: string): Promise<{ value: T; source: HitSource } | null> {
    const cached = this.#l1?.get(key);
    if (cached !== undefined) {
      this.metrics.l1Hits++;
      return Promise.resolve({ value: cached.value, source: 'l1' });
    }
    const flight = this.#flights.get(key);
    if (flight) return flight.promise;
    if (this.backend === null) {
      this.metrics.misses++;
      return Promise.resolve(null);
    }
    const created: Flight<T> = { promise: undefined as never, stale: false };
    created.promise = this.#readL2(this.backend, key, created).finally(() => {
      if (this.#flights.get(key) === created) this.#flights.delete(key);
    });
    this.#flights.set(key, created);
    return created.promise;
  }

  async #readL2(backend: Backend, key: string, flight: Flight<T>): Promise<{ value: T; source: HitSource } | null> {
    const started = performance.now();
    let bytes: Uint8Array | null;
    let ttlMs: number | null | undefined;
    try {
      if (hasTtl(backend) && !this.#expiresAt) {
        const entry = await this.#call('get', key, () => backend.getWithTtl(key));
        bytes = entry?.value ?? null;
        ttlMs = entry?.ttlMs;
      } else {
        bytes = await this.#call('get', key, () => backend.get(key));
        ttlMs = undefined;
      }
    } catch (error) {
      this.metrics.misses++;
      this.#report(error, 'get', key);
      return null;
    } finally {
      this.metrics.l2Reads++;
      this.metrics.l2ReadMsTotal += performance.now() - started;
    }
    if (bytes === null) {
      this.metrics.misses++;
      return null;
    }
    let value: T;
    try {
      value = this.#serializer.decode(bytes);
    } catch (error) {
      this.metrics.misses++;
      this.#report(
        new BackendError(`stored value could not be decoded: ${(error as Error).message}`, {
          kind: 'permanent',
          backend: this.guard.backendType,
          operation: 'decode',
          key,
          cause: error,
        }),
        'decode',
        key,
      );
      return null;
    }
    this.metrics.l2Hits++;
    if (this.#expiresAt) {
      const expiresAt = this.#expiresAt(value);
      ttlMs = expiresAt === undefined ? undefined : expiresAt === null ? null : expiresAt - nowMs();
    }
    if (!flight.stale) this.#putL1(key, value, ttlMs === undefined ? UNKNOWN_TTL_L1_MS : ttlMs);
    return { value, source: 'l2' };
  }

  /**
   * Stores `value` in L1 and L2. `ttlSeconds` undefined or 0 means no expiry. Resolves `false` when the L2 write
   * failed (reported through `onError`); the L1 then still holds the value for this process, for a few seconds.
   */
  async set(key: string, value: T, ttlSeconds?: number): Promise<boolean> {
    const bytes = this.#serializer.encode(value);
    this.metrics.sets++;
    this.#invalidateFlight(key);
    const ttlMs = ttlSeconds && ttlSeconds > 0 ? ttlSeconds * 1000 : null;
    this.#putL1(key, value, ttlMs);
    const backend = this.backend;
    if (backend === null) return true;
    try {
      await this.#call('set', key, () => backend.set(key, bytes, ttlSeconds), bytes.byteLength);
      return true;
    } catch (error) {
      this.#report(error, 'set', key);
      // Still this process's answer, but not the fleet's: the copy lives a few seconds, then the L2 decides again.
      if (this.#l1?.peek(key)?.value === value) this.#putL1(key, value, Math.min(ttlMs ?? Infinity, UNKNOWN_TTL_L1_MS));
      return false;
    }
  }

  /**
   * Stores `value` only if the L2 does not hold `key` (atomically where the backend offers `add`, else by an exists
   * check): for seeding without overwriting newer entries. `true` when stored; faults resolve `false`.
   */
  async add(key: string, value: T, ttlSeconds?: number): Promise<boolean> {
    const bytes = this.#serializer.encode(value);
    const ttlMs = ttlSeconds && ttlSeconds > 0 ? ttlSeconds * 1000 : null;
    const backend = this.backend;
    if (backend === null) {
      if (this.#l1?.has(key)) return false;
      this.#putL1(key, value, ttlMs);
      return true;
    }
    try {
      const stored = hasAdd(backend)
        ? await this.#call('add', key, () => backend.add(key, bytes, ttlSeconds))
        : await this.#setIfAbsent(backend, key, bytes, ttlSeconds);
      if (stored) {
        this.metrics.sets++;
        this.#invalidateFlight(key);
        this.#putL1(key, value, ttlMs);
      }
      return stored;
    } catch (error) {
      this.#report(error, 'add', key);
      return false;
    }
  }

  /** Deletes from L1 and L2; `true` when L2 (or, L1-only, the L1) held the key. Faults resolve `false`. */
  async delete(key: string): Promise<boolean> {
    this.metrics.deletes++;
    this.#invalidateFlight(key);
    const inL1 = this.#l1?.delete(key) ?? false;
    const backend = this.backend;
    if (backend === null) return inL1;
    try {
      return await this.#call('delete', key, () => backend.delete(key));
    } catch (error) {
      this.#report(error, 'delete', key);
      return false;
    }
  }

  /** Drops `key` from this process's L1 only (another instance changed it). */
  invalidateLocal(key: string): void {
    this.#invalidateFlight(key);
    this.#l1?.delete(key);
  }

  /** Drops the whole L1 of this process (e.g. after missing invalidation messages). */
  clearLocal(): void {
    for (const flight of this.#flights.values()) flight.stale = true;
    this.#l1?.clear();
  }

  /** Whether the L1 currently holds `key` (no L2 call, no metrics). */
  hasLocal(key: string): boolean {
    return this.#l1?.has(key) ?? false;
  }

  stats(): MetricsSnapshot {
    return this.metrics.snapshot({ bytes: this.#l1?.calculatedSize ?? 0, entries: this.#l1?.size ?? 0 });
  }

  #putL1(key: string, value: T, ttlMs: number | null): void {
    if (!this.#l1) return;
    const bounded = Math.min(ttlMs ?? Infinity, this.#maxL1TtlMs);
    if (bounded <= 0) {
      this.#l1.delete(key);
      return;
    }
    // lru-cache refuses entries over maxEntrySize; drop any older value so a too-large write never leaves it behind.
    this.#l1.delete(key);
    // The budget counts what the copy holds in memory (decoded), not its stored bytes: see footprint.ts.
    const size = L1_ENTRY_OVERHEAD_BYTES + stringBytes(key) + footprint(value);
    this.#l1.set(key, { value, size }, Number.isFinite(bounded) ? { ttl: Math.max(1, Math.floor(bounded)) } : {});
  }

  #invalidateFlight(key: string): void {
    const flight = this.#flights.get(key);
    if (flight) {
      flight.stale = true;
      this.#flights.delete(key);
    }
  }

  /** `add` for a backend without it: exists, then set (not atomic; a backend with `add` gets the atomic form). */
  async #setIfAbsent(backend: Backend, key: string, bytes: Uint8Array, ttlSeconds: number | undefined): Promise<boolean> {
    if (await this.#call('exists', key, () => backend.exists(key))) return false;
    await this.#call('set', key, () => backend.set(key, bytes, ttlSeconds));
    return true;
  }

  #call<R>(operation: L2Operation, key: string, call: () => Promise<R>, written = 0): Promise<R> {
    return this.guard.call(operation, call, key, written);
  }

  #report(error: unknown, operation: string, key: string): void {
    this.metrics.errors++;
    this.guard.report(error, operation, key, this.name);
  }
}
