/**
 * The L2 backend protocol: five required methods, and optional capabilities a backend may also offer.
 *
 * A custom backend is any object with these five methods. Nothing here needs to be extended or registered;
 * capabilities are detected at runtime with the `has*` guards below, never required.
 */

/** Details returned by {@link Backend.healthCheck}. `latency_ms` and `backend_type` are always present. */
export interface HealthDetails {
  /** Round-trip time of the health probe, in milliseconds. */
  latency_ms: number;
  /** `redis`, `file`, `memcached`, `cachekitio`, `memory`, or a custom backend's own name. */
  backend_type: string;
  [detail: string]: unknown;
}

/** The required L2 storage contract. Values are opaque bytes; a backend never interprets them. */
export interface Backend {
  /** The stored bytes, or `null` when the key does not exist (or has expired). */
  get(key: string): Promise<Uint8Array | null>;
  /** Stores `value`. `ttlSeconds` undefined or 0 means no expiry. */
  set(key: string, value: Uint8Array, ttlSeconds?: number): Promise<void>;
  /** `true` if the key existed and was deleted, `false` if it did not exist. */
  delete(key: string): Promise<boolean>;
  exists(key: string): Promise<boolean>;
  /** `[healthy, details]`; details always include `latency_ms` and `backend_type`. */
  healthCheck(): Promise<[boolean, HealthDetails]>;
  /**
   * Optional: the prefix this backend puts in front of every key. Encrypted entries bind `keyPrefix + key` in their
   * AAD (cachekit's logical backend key), and interop mode refuses a prefixed backend. A custom backend that
   * prefixes keys should expose it.
   */
  readonly keyPrefix?: string;
}

/** What went wrong, coarsely enough to decide what to do about it. */
export type BackendErrorKind =
  /** Worth retrying: connection refused or reset, server loading, 429, 5xx. */
  | 'transient'
  /** Retrying will not help: value too large, invalid key, 4xx, wrong type. */
  | 'permanent'
  /** No answer within the configured bound. */
  | 'timeout'
  /** Credentials missing or refused. */
  | 'authentication'
  | 'unknown';

/** Every BackendErrorKind (metrics start a series for each). */
export const BACKEND_ERROR_KINDS: readonly BackendErrorKind[] = ['transient', 'permanent', 'timeout', 'authentication', 'unknown'];
const KINDS: ReadonlySet<string> = new Set(BACKEND_ERROR_KINDS);

export interface BackendErrorOptions {
  kind: BackendErrorKind;
  /** The backend's `backend_type`, e.g. `redis`. */
  backend: string;
  /** The operation that failed, e.g. `get`. */
  operation?: string;
  /** The (user-visible) key involved, if any. */
  key?: string;
  cause?: unknown;
}

/** The one error type every backend throws. Map client failures onto a `kind`. */
export class BackendError extends Error {
  readonly kind: BackendErrorKind;
  readonly backend: string;
  readonly operation: string | undefined;
  readonly key: string | undefined;

  constructor(message: string, options: BackendErrorOptions) {
    super(`[cachekit] [${options.backend}] ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    if (!KINDS.has(options.kind)) throw new TypeError(`BackendError: unknown kind ${JSON.stringify(options.kind)}`);
    this.name = 'BackendError';
    this.kind = options.kind;
    this.backend = options.backend;
    this.operation = options.operation;
    this.key = options.key;
  }

  /** `true` for failures a retry or a later attempt may get past (transient and timeout). */
  get retryable(): boolean {
    return this.kind === 'transient' || this.kind === 'timeout';
  }

  static is(error: unknown): error is BackendError {
    return error instanceof BackendError || (error instanceof Error && error.name === 'BackendError' && 'kind' in error);
  }
}

// ---------------------------------------------------------------------------------------------
// Optional capabilities. A backend implements any subset; callers check with the guards.
// ---------------------------------------------------------------------------------------------

/** Several keys in one round trip where the store allows it. */
export interface BatchCapable {
  /** Values in the order of `keys`; `null` for each missing key. */
  getMany(keys: readonly string[]): Promise<(Uint8Array | null)[]>;
  setMany(entries: readonly { key: string; value: Uint8Array; ttlSeconds?: number }[]): Promise<void>;
}

/** An entry together with how long it still lives, read in the same round trip as the value. */
export interface EntryWithTtl {
  value: Uint8Array;
  /** Milliseconds until the entry expires; `null` when it never expires. */
  ttlMs: number | null;
}

/** TTL inspection. Lets an L1 in front never keep an entry longer than the L2 does. */
export interface TtlCapable {
  /** The value and its remaining lifetime, or `null` on a miss. One round trip. */
  getWithTtl(key: string): Promise<EntryWithTtl | null>;
  /** Remaining lifetime in seconds; `null` when the key has no expiry; `undefined` when it does not exist. */
  getTtl(key: string): Promise<number | null | undefined>;
  /** Sets a new TTL (seconds, > 0) on an existing key; `false` when the key does not exist. */
  refreshTtl(key: string, ttlSeconds: number): Promise<boolean>;
}

/** Mutual exclusion with a lease: a crashed holder's lock expires after `timeoutMs`. */
export interface LockCapable {
  /** A lock token when acquired, `null` when someone else holds the lock. Never waits. */
  acquireLock(key: string, timeoutMs: number): Promise<string | null>;
  /** Releases only if `token` still holds the lock; `true` when released. */
  releaseLock(key: string, token: string): Promise<boolean>;
}

/** Set-if-absent, for seeding without overwriting newer entries. */
export interface AddCapable {
  /** Stores only when the key does not exist; `true` when stored. */
  add(key: string, value: Uint8Array, ttlSeconds?: number): Promise<boolean>;
}

/**
 * An atomic counter: what lets instances without invalidation messages agree on an invalidation epoch (coherence).
 * The counter is stored as ASCII decimal digits, so `get(key)` reads it back.
 */
export interface CounterCapable {
  /**
   * Adds 1 to the counter under `key`, atomically across every process sharing the store, and returns the new value.
   * A missing counter is created holding `initial`, which is returned as it is. Counters never expire (the store may
   * still evict them).
   */
  incr(key: string, initial: number): Promise<number>;
}

/** A handler for messages on an invalidation channel. */
export type MessageHandler = (message: string) => void;

export interface Subscription {
  unsubscribe(): Promise<void>;
}

/** Broadcast messages between processes that share the store (e.g. Redis pub/sub). */
export interface InvalidationCapable {
  publish(channel: string, message: string): Promise<void>;
  /**
   * Subscribes to `channel`. `onResync` is called after a (re)connection of the subscriber, when messages may have
   * been missed: the caller must drop whatever they were protecting (e.g. flush its L1).
   */
  subscribe(channel: string, onMessage: MessageHandler, onResync: () => void): Promise<Subscription>;
}

/** Releases connections, timers and file handles. Backends that hold none may omit it. */
export interface Closable {
  close(): Promise<void>;
}

function hasMethods(backend: unknown, ...names: string[]): boolean {
  if (backend === null || typeof backend !== 'object') return false;
  const record = backend as Record<string, unknown>;
  return names.every((name) => typeof record[name] === 'function');
}

export const hasBatch = (b: Backend): b is Backend & BatchCapable => hasMethods(b, 'getMany', 'setMany');
export const hasTtl = (b: Backend): b is Backend & TtlCapable => hasMethods(b, 'getWithTtl', 'getTtl', 'refreshTtl');
export const hasLocks = (b: Backend): b is Backend & LockCapable => hasMethods(b, 'acquireLock', 'releaseLock');
export const hasAdd = (b: Backend): b is Backend & AddCapable => hasMethods(b, 'add');
export const hasCounter = (b: Backend): b is Backend & CounterCapable => hasMethods(b, 'incr');
export const hasInvalidation = (b: Backend): b is Backend & InvalidationCapable => hasMethods(b, 'publish', 'subscribe');
export const isClosable = (b: unknown): b is Closable => hasMethods(b, 'close');

/** `true` when `value` has the five protocol methods. */
export function isBackend(value: unknown): value is Backend {
  return hasMethods(value, 'get', 'set', 'delete', 'exists', 'healthCheck');
}
