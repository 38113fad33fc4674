/** cachekit-next's legacy handler over a given backend, as the benchmarks drive it. */
import type { Backend } from '../src/protocol/backend.js';
import { RedisBackend } from '../src/backends/redis.js';
import { handlerClassFor } from '../src/next/cache-handler.js';
import { Runtime, type CachekitNextOptions } from '../src/stack/stack.js';
import type { LegacyHandler } from './peers.js';

export const NAMESPACE = 'bench';
export const DEPLOYMENT_ID = 'b1';

export interface Ours {
  runtime: Runtime;
  handler: LegacyHandler;
  /** A new handler, as Next constructs one for every request. */
  request(): LegacyHandler;
  /** The backend key a page entry of `key` is stored under (for Redis: without the backend's own keyPrefix). */
  storeKey(key: string): string;
  /** The Redis key (backend keyPrefix included) when the backend is Redis. */
  redisKey(key: string): string;
}

/**
 * A fresh Runtime (not the per-process registry of `createCacheHandler`, so several configurations can be compared in
 * one process) and the handler class Next would construct over it.
 */
export async function createOurs(backend: Backend, options: Omit<CachekitNextOptions, 'backend'> = {}): Promise<Ours> {
  const runtime = new Runtime({ namespace: NAMESPACE, deploymentId: DEPLOYMENT_ID, ...options, backend });
  await runtime.ready;
  const Handler = handlerClassFor(() => runtime);
  const storeKey = (key: string) => `${runtime.keyPrefix}${runtime.namespace}:${runtime.deploymentId()}:r:${key}`;
  return {
    runtime,
    handler: new Handler({}) as unknown as LegacyHandler,
    request: () => new Handler({}) as unknown as LegacyHandler,
    storeKey,
    redisKey: (key) => (backend instanceof RedisBackend ? backend.fullKey(storeKey(key)) : storeKey(key)),
  };
}
