import { afterAll, beforeAll } from 'vitest';
import { RedisBackend, type RedisBackendOptions } from '../../src/backends/redis.js';
import { resetStacks } from '../../src/stack/stack.js';
import { startRedis, type ServerHandle } from './servers.js';

/**
 * One redis-server for the calling file or describe block (started before its tests, stopped after), and a factory
 * of RedisBackend objects on it: each object stands for one instance's connections and is closed at the end, after
 * the Next stacks built on them.
 */
export function redisFixture(): { url(): string; backend(options?: Partial<RedisBackendOptions>): RedisBackend } {
  let redis: ServerHandle & { url: string };
  const backends: RedisBackend[] = [];
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await resetStacks();
    await Promise.all(backends.map((b) => b.close()));
    await redis?.stop();
  });
  return {
    url: () => redis.url,
    backend(options = {}) {
      const backend = new RedisBackend({ url: redis.url, ...options });
      backends.push(backend);
      return backend;
    },
  };
}
