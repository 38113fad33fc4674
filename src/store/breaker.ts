import { BackendError, type Backend } from '../protocol/backend.js';
import { nowMs } from '../shared/clock.js';
import { breakerTransition } from '../shared/telemetry.js';
import { singleton } from '../shared/registry.js';

export interface BreakerOptions {
  /** Consecutive transient/timeout failures that open the circuit. @default 5 */
  failureThreshold?: number;
  /** How long an open circuit short-circuits calls before one probe is let through, in ms. @default 2000 */
  cooldownMs?: number;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

/**
 * A circuit breaker per backend: after `failureThreshold` consecutive transient or timeout failures, calls fail at
 * once (no connect attempt, no timeout to wait out) for `cooldownMs`; then one call probes, and its success closes
 * the circuit. Permanent errors (a value too large, a bad key) say nothing about availability and do not count.
 */
export class CircuitBreaker {
  readonly failureThreshold: number;
  readonly cooldownMs: number;
  #state: BreakerState = 'closed';
  #failures = 0;
  #openedAt = 0;
  #probing = false;
  /** Number of times the circuit opened. */
  opened = 0;

  constructor(options: BreakerOptions = {}) {
    this.failureThreshold = options.failureThreshold ?? 5;
    this.cooldownMs = options.cooldownMs ?? 2_000;
  }

  get state(): BreakerState {
    if (this.#state === 'open' && nowMs() - this.#openedAt >= this.cooldownMs) return 'half-open';
    return this.#state;
  }

  /** Runs `call` through the breaker; throws a transient BackendError without calling when open. */
  async run<T>(backendType: string, operation: string, call: () => Promise<T>): Promise<T> {
    const state = this.state;
    if (state === 'open' || (state === 'half-open' && this.#probing)) {
      throw new BackendError(`circuit open after ${this.#failures} consecutive failures; retrying in at most ${this.cooldownMs} ms`, {
        kind: 'transient',
        backend: backendType,
        operation,
      });
    }
    const probe = state === 'half-open';
    if (probe) this.#probing = true;
    if (probe) breakerTransition(backendType, 'open', 'half-open');
    try {
      const result = await call();
      this.#failures = 0;
      breakerTransition(backendType, probe ? 'half-open' : this.#state, 'closed');
      this.#state = 'closed';
      return result;
    } catch (error) {
      if (BackendError.is(error) && !error.retryable) {
        // The backend answered: it is available even if this call was refused.
        this.#failures = 0;
        breakerTransition(backendType, probe ? 'half-open' : this.#state, 'closed');
        this.#state = 'closed';
      } else {
        this.#failures++;
        if (probe || this.#failures >= this.failureThreshold) {
          if (this.#state !== 'open' || probe) this.opened++;
          breakerTransition(backendType, probe ? 'half-open' : this.#state, 'open');
          this.#state = 'open';
          this.#openedAt = nowMs();
        }
      }
      throw error;
    } finally {
      if (probe) this.#probing = false;
    }
  }
}

/** The breaker shared by every cache over `backend` in this process (created with `options` on first use). */
export function breakerFor(backend: Backend, options?: BreakerOptions): CircuitBreaker {
  const breakers = singleton('breakers', () => new WeakMap<Backend, CircuitBreaker>());
  let breaker = breakers.get(backend);
  if (!breaker) {
    breaker = new CircuitBreaker(options);
    breakers.set(backend, breaker);
  }
  return breaker;
}
