import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { backendFromEnv, resolveBackend } from '../../src/protocol.js';
import { CachekitIOBackend, ConfigError, FileBackend, MemcachedBackend, MemoryBackend, RedisBackend, setDefaultBackend, setLogger } from '../../src/index.js';

const closeAll: { close(): Promise<void> }[] = [];
afterEach(async () => {
  setDefaultBackend(null);
  setLogger(null);
  await Promise.all(closeAll.splice(0).map((b) => b.close()));
});

const env = (vars: Record<string, string>): NodeJS.ProcessEnv => ({ ...vars });

describe('backend resolution: explicit > setDefaultBackend > environment > embedded File', () => {
  it('an explicit backend wins, and null means L1-only', () => {
    const explicit = new MemoryBackend();
    setDefaultBackend(new MemoryBackend());
    expect(resolveBackend(explicit)).toBe(explicit);
    expect(resolveBackend(null)).toBeNull();
  });

  it('the module default wins over the environment; setDefaultBackend(null) clears it', () => {
    const fallback = new MemoryBackend();
    vi.stubEnv('CACHEKIT_REDIS_URL', 'redis://127.0.0.1:1');
    try {
      setDefaultBackend(fallback);
      expect(resolveBackend()).toBe(fallback);
      setDefaultBackend(null);
      const fromEnv = resolveBackend();
      expect(fromEnv).toBeInstanceOf(RedisBackend);
      closeAll.push(fromEnv as RedisBackend);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('each CACHEKIT_* variable selects its backend', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ck-resolve-'));
    try {
      const redis = backendFromEnv({ env: env({ CACHEKIT_REDIS_URL: 'redis://127.0.0.1:6390' }) });
      const memcached = backendFromEnv({ env: env({ CACHEKIT_MEMCACHED_SERVERS: '127.0.0.1:11299' }) });
      const file = backendFromEnv({ env: env({ CACHEKIT_FILE_CACHE_DIR: dir }) });
      const io = backendFromEnv({ env: env({ CACHEKIT_API_KEY: 'ck_test_key', CACHEKIT_API_URL: 'http://127.0.0.1:9', CACHEKIT_ALLOW_CUSTOM_HOST: 'true' }) });
      closeAll.push(redis as RedisBackend, memcached as MemcachedBackend, io as CachekitIOBackend);
      expect(redis).toBeInstanceOf(RedisBackend);
      expect(memcached).toBeInstanceOf(MemcachedBackend);
      expect(file).toBeInstanceOf(FileBackend);
      expect(io).toBeInstanceOf(CachekitIOBackend);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('more than one selecting variable is a configuration error naming them', () => {
    const call = () => backendFromEnv({ env: env({ CACHEKIT_REDIS_URL: 'redis://x:1', CACHEKIT_MEMCACHED_SERVERS: 'x:2' }) });
    expect(call).toThrow(ConfigError);
    expect(call).toThrow(/CACHEKIT_REDIS_URL, CACHEKIT_MEMCACHED_SERVERS/);
  });

  it('falls back to REDIS_URL, then to the embedded File backend, announced once', () => {
    const redis = backendFromEnv({ env: env({ REDIS_URL: 'redis://127.0.0.1:6391' }) });
    closeAll.push(redis as RedisBackend);
    expect(redis).toBeInstanceOf(RedisBackend);

    const messages: string[] = [];
    setLogger({ info: (m) => messages.push(m), warn: (m) => messages.push(m) });
    const dir = path.join(os.tmpdir(), `ck-embedded-${process.pid}`);
    const first = backendFromEnv({ env: env({}), defaultFileCacheDir: dir });
    const second = backendFromEnv({ env: env({}), defaultFileCacheDir: dir });
    expect(first).toBeInstanceOf(FileBackend);
    expect(second).toBe(first); // memoised: one backend per configuration
    expect(messages.filter((m) => m.includes('embedded File backend'))).toHaveLength(1);
    expect(messages[0]).toContain(dir);
  });

  it('memoises environment backends so repeated resolution shares connections', () => {
    const vars = env({ CACHEKIT_REDIS_URL: 'redis://127.0.0.1:6392' });
    const one = backendFromEnv({ env: vars });
    closeAll.push(one as RedisBackend);
    expect(backendFromEnv({ env: vars })).toBe(one);
  });

  it('names a bad value in the environment', () => {
    expect(() => backendFromEnv({ env: env({ CACHEKIT_REDIS_URL: 'http://not-redis' }) })).toThrow(/CACHEKIT_REDIS_URL/);
    expect(() => backendFromEnv({ env: env({ CACHEKIT_FILE_CACHE_DIR: '/tmp/x', CACHEKIT_FILE_MAX_SIZE_MB: '-1' }) })).toThrow(/CACHEKIT_FILE_MAX_SIZE_MB/);
  });
});
