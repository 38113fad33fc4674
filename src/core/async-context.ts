/**
 * Long-lived state (connections, subscriptions, their timers and promises) must not be created inside a request's
 * AsyncLocalStorage context: every async resource created there copies the context, and a socket or a promise that
 * lives as long as the process then keeps that request (its stores, headers, render state) reachable forever. Next
 * creates handlers lazily, during the first request that needs one, so per-process state is created through this.
 */
import { AsyncResource } from 'node:async_hooks';

/**
 * Runs `fn` in an empty async context: no AsyncLocalStorage store is visible in it or in anything it starts.
 *
 * Node has no public API for "no context", so this takes an AsyncResource (which captures the current context) and
 * removes what it captured: the per-storage `kResourceStore` slots (Node 20/22) and the `async_context_frame` slot
 * (Node 24+ AsyncContextFrame). Should a future Node store it elsewhere, nothing is removed and `fn` simply runs in
 * the current context, as it would without this.
 */
export function runOutsideAsyncContext<T>(fn: () => T): T {
  const scope = new AsyncResource('cachekit-next');
  const slots = scope as unknown as Record<symbol, unknown>;
  for (const symbol of Object.getOwnPropertySymbols(scope)) {
    const name = symbol.description ?? '';
    if (name === 'kResourceStore' || name.includes('context_frame') || name.includes('ContextFrame')) delete slots[symbol];
  }
  return scope.runInAsyncScope(fn);
}
