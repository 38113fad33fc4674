/**
 * The one way the store layer calls an L2: every call gets the deadline, goes through the backend's circuit breaker
 * (shared per backend), and a fault is turned into one classified `BackendError` reported to one `onError` hook.
 * Entries (tiered.ts), tag keys (tags.ts), the invalidation epoch (epoch.ts) and messages (coherence.ts) all call
 * through a guard, so this is the single place that sees every L2 call's operation, latency and outcome.
 */
import { BackendError, type Backend } from '../protocol/backend.js';
import { warnRateLimited } from '../shared/log.js';
import { breakerFor, type BreakerOptions, type CircuitBreaker } from './breaker.js';
import { withDeadline } from './deadline.js';

/** What an L2 call does, as named in reports, errors and logs. */
export type L2Operation =
  /** Entry reads and writes (tiered.ts). */
  | 'get'
  | 'set'
  | 'add'
  | 'exists'
  | 'delete'
  /** Tag states: a batched read of tag keys, and the write of a tag event (tags.ts). */
  | 'getTags'
  | 'revalidateTag'
  /** The invalidation epoch (epoch.ts): counter and journal reads; the bump and its journal entry. */
  | 'epochRead'
  | 'epochWrite'
  /** An invalidation message (coherence.ts). */
  | 'publish'
  /** The cross-instance compute lock of the loaders (loaders/core.ts). */
  | 'acquireLock'
  | 'releaseLock';

export interface ErrorContext {
  operation: string;
  key?: string;
  /** Name of the cache reporting it. */
  cache: string;
}

/** Receives every backend fault the cache turned into a miss (or a failed write). */
export type ErrorHandler = (error: BackendError, context: ErrorContext) => void;

/** The guarded form of an L2 call, as the tag store and the epoch take it. */
export type GuardedCall = <R>(operation: L2Operation, run: () => Promise<R>) => Promise<R>;

export interface L2GuardOptions {
  /** The L2 (its breaker is shared by every guard over it); `null`: nothing to call, only reports. */
  backend: Backend | null;
  /** Deadline of every call in ms; past it the call rejects with a `timeout` BackendError. */
  timeoutMs: number;
  /** Circuit breaker settings (the first guard over a backend creates its breaker), or `false` for none. */
  breaker?: BreakerOptions | false;
  /** Receives every reported fault; the default logs it, rate limited. */
  onError?: ErrorHandler;
  /** Name of the cache in reports and logs. @default 'cache' */
  name?: string;
}

const defaultOnError: ErrorHandler = (error, context) => {
  warnRateLimited(`${context.cache}:${error.backend}:${error.kind}`, `${error.message} (${context.cache}.${context.operation}; served as a miss)`);
};

export class L2Guard {
  readonly backendType: string;
  readonly timeoutMs: number;
  readonly name: string;
  readonly breaker: CircuitBreaker | null;
  readonly #onError: ErrorHandler;

  constructor(options: L2GuardOptions) {
    this.backendType = backendTypeOf(options.backend);
    this.timeoutMs = options.timeoutMs;
    this.name = options.name ?? 'cache';
    this.#onError = options.onError ?? defaultOnError;
    this.breaker = options.backend && options.breaker !== false ? breakerFor(options.backend, options.breaker) : null;
  }

  /**
   * Runs one L2 call within the deadline and through the breaker. Rejects (never throws synchronously) with what the
   * call rejected with, a `timeout` BackendError past the deadline, or a `transient` one while the circuit is open.
   */
  call<R>(operation: L2Operation, run: () => Promise<R>): Promise<R> {
    const guarded = () => withDeadline(attempt(run), this.timeoutMs, this.backendType, operation);
    return this.breaker ? this.breaker.run(this.backendType, operation, guarded) : guarded();
  }

  /** `call` as a function value (for the tag store and the epoch). */
  readonly run: GuardedCall = (operation, run) => this.call(operation, run);

  /**
   * Reports `error` once to `onError`, as a BackendError (anything else is wrapped as kind `unknown`, the original as
   * its cause). A hook that throws is ignored: a cache fault must never become a page error.
   */
  report(error: unknown, operation: string, key?: string, cache = this.name): BackendError {
    const backendError = toBackendError(error, this.backendType, operation, key);
    const context: ErrorContext = key === undefined ? { operation, cache } : { operation, key, cache };
    try {
      this.#onError(backendError, context);
    } catch {
      // Nothing more can be done with it.
    }
    return backendError;
  }
}

/** `error` as a BackendError: itself when it is one, else wrapped (kind `unknown`, `cause` the original). */
export function toBackendError(error: unknown, backend: string, operation: string, key?: string): BackendError {
  if (BackendError.is(error)) return error;
  return new BackendError(`${operation} failed: ${(error as Error)?.message ?? String(error)}`, {
    kind: 'unknown',
    backend,
    operation,
    ...(key === undefined ? {} : { key }),
    cause: error,
  });
}

/** `run()`, with a synchronous throw turned into a rejection (a custom backend may throw before returning a promise). */
function attempt<R>(run: () => Promise<R>): Promise<R> {
  try {
    return run();
  } catch (error) {
    return Promise.reject(error);
  }
}

/** A readable name for a backend in messages: its class name without the `Backend` suffix. */
export function backendTypeOf(backend: Backend | null): string {
  if (backend === null) return 'none';
  const name = (backend as { constructor?: { name?: string } }).constructor?.name;
  if (!name || name === 'Object') return 'custom';
  // A bundler may rename a class `_FileBackend` to avoid a clash: the leading underscores are not part of the name.
  return (
    name
      .replace(/^_+/, '')
      .replace(/Backend$/, '')
      .toLowerCase() || 'custom'
  );
}
