import type { Backend } from '../protocol/backend.js';
import type { CacheStack } from '../stack/stack.js';
import type { Encryptor, EncryptionOptions } from '../wire/encryption.js';
import type { ErrorContext } from '../store/tiered.js';
import type { BreakerOptions } from '../store/breaker.js';

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
   * @default { maxTtlSeconds: the entry's TTL (`coherenceTtlSeconds` with `interop`, or a backend that has neither messages nor epoch) }
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
  /**
   * Over a backend without invalidation messages (or with `interop`): the longest an L1 copy is trusted unannounced,
   * in seconds (the handlers' option of the same name). @default 1
   */
  coherenceTtlSeconds?: number;
  /** Circuit breaker on the backend: `true`, its settings, or `false`. @default true */
  breaker?: boolean | BreakerOptions;
  /** Deadline for every L2 call in ms; past it the call is a miss (the handlers' default too). @default 1500 */
  timeoutMs?: number;
  /**
   * Tag store of `tags`: a cache stack (e.g. `getStack(options)`), or a function returning one.
   * @default with tags, the Next handlers' stack (`configuredStack()`): Next's revalidateTag/updateTag reach entries
   */
  stack?: CacheStack | (() => CacheStack | Promise<CacheStack>);
  /**
   * Encrypts entries (AES-256-GCM, per-tenant keys by HKDF, AAD = tenant + key): an `Encryptor`, or its options, each
   * falling back to CACHEKIT_MASTER_KEY, CACHEKIT_PREVIOUS_MASTER_KEYS and CACHEKIT_ENCRYPTION_FAIL_CLOSED. The L1 then
   * keeps ciphertext. `true`: from the environment alone; `false`: none. `cache.secure` sets it. @default false
   */
  encryption?: boolean | Encryptor | (Partial<EncryptionOptions> & { /** @deprecated use `tenant` */ tenant?: string });
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
