import type { Backend } from '../../src/protocol/backend.js';

/**
 * The same store seen through another object, as another process's connection would be: `cache(fn)` shares one core
 * (L1, statistics) per backend object in a process, so tests stand for a second instance with a second object.
 * Methods run on the real backend (its private fields work); `instanceof` still holds.
 */
export function anotherInstance<B extends Backend>(backend: B): B {
  return new Proxy(backend, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
