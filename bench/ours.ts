/** cachekit-next's legacy handler over a given backend, as the benchmarks drive it. */
import type { Backend } from '../src/protocol/backend.js';
import { RedisBackend } from '../src/backends/redis.js';
import { handlerClassFor } from '../src/next/cache-handler.js';
import { CacheStack, type CachekitNextOptions } from '../src/stack/stack.js';
import type { LegacyHandler } from './peers.js';

export const NAMESPACE = 'bench';
export const DEPLOYMENT_ID = 'b1';

export interface Ours {
  stack: CacheStack;
  handler: LegacyHandler;
  /** A new handler, as Next constructs one for every request. */
  request(): LegacyHandler;
  /** The backend key a page entry of `key` is stored under (for Redis: without the backend's own keyPrefix). */
  storeKey(key: string): string;
  /** The Redis key (backend keyPrefix included) when the backend is Redis. */
  redisKey(key: string): string;
}

/**
 * A fresh CacheStack (not the per-process registry of `createCacheHandler`, so several configurations can be compared in
 * one process) and the handler class Next would construct over it.
 */
export async function createOurs(backend: Backend, options: Omit<CachekitNextOptions, 'backend'> = {}): Promise<Ours> {
  const stack = new CacheStack({ namespace: NAMESPACE, deploymentId: DEPLOYMENT_ID, ...options, backend });
  await stack.ready;
  const Handler = handlerClassFor(() => stack);
  const storeKey = (key: string) => `${stack.keyPrefix}${stack.namespace}:${stack.deploymentId()}:r:${key}`;
  return {
    stack,
    handler: new Handler({}) as unknown as LegacyHandler,
    request: () => new Handler({}) as unknown as LegacyHandler,
    storeKey,
    redisKey: (key) => (backend instanceof RedisBackend ? backend.fullKey(storeKey(key)) : storeKey(key)),
  };
}
