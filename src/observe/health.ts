/**
 * `healthCheck()`: the whole stack of this process (L1 figures, the L2's own health probe and its latency, the circuit
 * breaker, the invalidation subscription) as one JSON-ready object, and the status a readiness probe should answer.
 */
import { isBackend, type HealthDetails } from '../protocol/backend.js';
import { configuredStack, type CacheStack } from '../stack/stack.js';
import { withDeadline } from '../store/deadline.js';
import type { BreakerStateName } from '../shared/telemetry.js';
import { backendName } from './labels.js';

export interface HealthOptions {
  /** The stack to check. @default the handlers' stack (configured by withCachekit or the environment) */
  stack?: CacheStack | (() => CacheStack | Promise<CacheStack>);
  /** Longest wait for the L2's health probe, in ms. @default 1000 */
  timeoutMs?: number;
}

export interface HealthReport {
  /** `ok`; `degraded` (the site serves, from L1 and fresh renders: L2 down, breaker open, no subscription); `unavailable` (no cache at all). */
  status: 'ok' | 'degraded' | 'unavailable';
  degraded: boolean;
  l1: { caches: { name: string; entries: number; bytes: number }[] };
  l2: { backend: string; healthy: boolean; latencyMs: number; error?: string; details?: HealthDetails } | null;
  breaker: BreakerStateName | 'none';
  /** The invalidation channel: `live`, `down` (retrying), or `none` (the backend has none: epoch or no coherence). */
  subscription: 'live' | 'down' | 'none';
  /** Time the whole check took, in ms. */
  checkMs: number;
  error?: string;
}

async function probe(stack: CacheStack, timeoutMs: number): Promise<HealthReport['l2']> {
  const backend = stack.backend;
  if (!backend || !isBackend(backend)) return null;
  const name = backendName(backend);
  const started = performance.now();
  try {
    // Straight to the backend (not through the breaker): the probe must see the store as it is now.
    const [healthy, details] = await withDeadline(backend.healthCheck(), timeoutMs, name, 'healthCheck');
    return { backend: name, healthy, latencyMs: details?.latency_ms ?? performance.now() - started, details };
  } catch (error) {
    return { backend: name, healthy: false, latencyMs: performance.now() - started, error: (error as Error)?.message ?? String(error) };
  }
}

/** Checks the stack; never throws (a broken configuration is `unavailable`). */
export async function healthCheck(options: HealthOptions = {}): Promise<HealthReport> {
  const started = performance.now();
  let stack: CacheStack;
  try {
    const source = options.stack ?? (() => configuredStack());
    stack = await (typeof source === 'function' ? source() : source);
  } catch (error) {
    return {
      status: 'unavailable',
      degraded: true,
      l1: { caches: [] },
      l2: null,
      breaker: 'none',
      subscription: 'none',
      checkMs: performance.now() - started,
      error: (error as Error)?.message ?? String(error),
    };
  }
  const l2 = await probe(stack, options.timeoutMs ?? 1_000);
  const breaker: HealthReport['breaker'] = stack.guard.breaker?.state ?? 'none';
  const subscription = stack.bus.subscription;
  // Half-open: the cooldown is over and the next call probes; the probe above tells whether the store answers.
  const degraded = (l2 !== null && !l2.healthy) || breaker === 'open' || subscription === 'down';
  return {
    status: degraded ? 'degraded' : 'ok',
    degraded,
    l1: {
      caches: stack.caches.map(({ name, cache }) => {
        const s = cache.stats();
        return { name, entries: s.l1Entries, bytes: s.l1Bytes };
      }),
    },
    l2,
    breaker,
    subscription,
    checkMs: performance.now() - started,
  };
}
