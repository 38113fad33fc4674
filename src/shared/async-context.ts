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

const detached = new WeakMap<object, object>();

/**
 * `backend` with every method run outside the caller's async context (same object for the same backend, so breakers
 * and other per-backend state stay shared). Backends open connections lazily, on the first call that needs one, and
 * that call usually comes from a render: without this, the socket (and through its reconnects, every later one)
 * would keep that first request alive for the life of the process. Costs well under a microsecond per call.
 */
export function detachedFromAsyncContext<T extends object>(backend: T): T {
  const existing = detached.get(backend);
  if (existing) return existing as T;
  const wrapped = new Map<PropertyKey, unknown>();
  const proxy = new Proxy(backend, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function' || property === 'constructor') return value;
      let method = wrapped.get(property) as ((...args: unknown[]) => unknown) | undefined;
      if (!method || (method as { original?: unknown }).original !== value) {
        const original = value as (...args: unknown[]) => unknown;
        // Called on the real object: backends keep their state in private fields, which a proxy does not have.
        method = Object.assign((...args: unknown[]) => runOutsideAsyncContext(() => original.apply(target, args)), { original });
        wrapped.set(property, method);
      }
      return method;
    },
  });
  detached.set(backend, proxy);
  return proxy;
}
