import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemcachedBackend, type MemcachedBackendOptions } from '../../src/backends/memcached.js';
import { memcachedStats } from '../support/memcached-servers.js';
import { refusedAddress, startMemcached, type ServerHandle } from '../support/servers.js';
import { configError } from '../support/errors.js';

const NO_ENV: NodeJS.ProcessEnv = {};

describe('MemcachedBackend options', () => {
  const invalid: [string, MemcachedBackendOptions | Record<string, unknown>][] = [
    ['servers', { servers: 'localhost:11211' as unknown as string[] }],
    ['servers', { servers: [] }],
    ['servers', { servers: ['localhost'] }],
    ['servers', { servers: ['localhost:'] }],
    ['servers', { servers: ['localhost:0'] }],
    ['servers', { servers: ['localhost:70000'] }],
    ['servers', { servers: ['memcached://localhost:11211'] }],
    ['servers', { servers: ['user:pass@localhost:11211'] }],
    ['servers', { servers: ['a b:11211'] }],
    ['servers', { servers: ['::1:11211'] }],
    ['servers', { servers: [42 as unknown as string] }],
    ['servers', { servers: ['h:11211', 'H:11211'] }],
    ['keyPrefix', { keyPrefix: 'has space' }],
    ['keyPrefix', { keyPrefix: 'tab\t' }],
    ['keyPrefix', { keyPrefix: 'p'.repeat(179) }],
    ['keyPrefix', { keyPrefix: 7 as unknown as string }],
    ['timeoutMs', { timeoutMs: 0 }],
    ['timeoutMs', { timeoutMs: -5 }],
    ['timeoutMs', { timeoutMs: Number.NaN }],
    ['timeoutMs', { timeoutMs: '1000' as unknown as number }],
    ['connectTimeoutMs', { connectTimeoutMs: 0 }],
    ['connectTimeoutMs', { connectTimeoutMs: Number.POSITIVE_INFINITY }],
    ['maxItemSizeBytes', { maxItemSizeBytes: 0 }],
    ['maxItemSizeBytes', { maxItemSizeBytes: 1.5 }],
    ['maxItemSizeBytes', { maxItemSizeBytes: 2 * 1024 ** 3 }],
    ['keyprefix', { keyprefix: 'typo' }],
  ];
  for (const [option, options] of invalid) {
    it(`rejects ${JSON.stringify(options, (_, v: unknown) => (Number.isNaN(v) ? 'NaN' : v === Infinity ? 'Infinity' : v))} naming ${option}`, () => {
      const error = configError(() => new MemcachedBackend(options as MemcachedBackendOptions, NO_ENV));
      expect(error.option).toBe(option);
      expect(error.message).toContain(`\`${option}\``);
    });
  }

  it('accepts hostnames, IPv4, bracketed IPv6 and a 178-byte prefix', async () => {
    const backend = new MemcachedBackend({ servers: ['cache-1.internal:11211', '10.0.0.2:11212', '[::1]:11213'], keyPrefix: 'p'.repeat(178) }, NO_ENV);
    expect(backend.keyFor('k')).toBe(`${'p'.repeat(178)}k`);
    await backend.close();
  });

  it('defaults to 127.0.0.1:11211, 1 s + 2 s and no prefix', async () => {
    const backend = new MemcachedBackend({}, NO_ENV);
    try {
      expect(backend.boundMs).toBe(3_000);
      expect(backend.keyFor('k')).toBe('k');
      const [, details] = await backend.healthCheck();
      expect((details.servers as { server: string }[]).map((s) => s.server)).toEqual(['127.0.0.1:11211']);
    } finally {
      await backend.close();
    }
  });
});

describe('MemcachedBackend.fromEnv', () => {
  let a: ServerHandle;
  let b: ServerHandle;

  beforeAll(async () => {
    [a, b] = await Promise.all([startMemcached(), startMemcached()]);
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  const servers = (backend: MemcachedBackend) => backend.healthCheck().then(([, details]) => (details.servers as { server: string }[]).map((s) => s.server));

  it('reads a JSON list of servers and uses all of them', async () => {
    const backend = MemcachedBackend.fromEnv({ CACHEKIT_MEMCACHED_SERVERS: JSON.stringify([a.address, b.address]) });
    try {
      expect(await servers(backend)).toEqual([a.address, b.address]);
      await Promise.all(Array.from({ length: 60 }, (_, i) => backend.set(`env-json:${i}`, new Uint8Array([i]))));
      const counts = await Promise.all([a, b].map(async (s) => Number((await memcachedStats(s.address)).curr_items)));
      expect(counts[0]! + counts[1]!).toBe(60);
      expect(Math.min(...counts)).toBeGreaterThan(0);
    } finally {
      await backend.close();
    }
  });

  it('reads a comma list (spaces allowed), seconds as ms, the prefix and the item size limit', async () => {
    const backend = MemcachedBackend.fromEnv({
      CACHEKIT_MEMCACHED_SERVERS: ` ${a.address} , ${b.address} `,
      CACHEKIT_MEMCACHED_TIMEOUT: '0.25',
      CACHEKIT_MEMCACHED_CONNECT_TIMEOUT: '0.5',
      CACHEKIT_MEMCACHED_KEY_PREFIX: 'app1:',
      CACHEKIT_MEMCACHED_MAX_ITEM_SIZE_BYTES: '1000',
    });
    try {
      expect(await servers(backend)).toEqual([a.address, b.address]);
      expect(backend.boundMs).toBe(750);
      expect(backend.keyFor('k')).toBe('app1:k');
      await expect(backend.set('k', new Uint8Array(1001))).rejects.toThrow(/1001 bytes exceeds maxItemSizeBytes \(1000 bytes\)/);
      await backend.set('k', new Uint8Array(1000));
    } finally {
      await backend.close();
    }
  });

  it('lets explicit options win over the environment', async () => {
    const env = { CACHEKIT_MEMCACHED_SERVERS: a.address, CACHEKIT_MEMCACHED_TIMEOUT: '5', CACHEKIT_MEMCACHED_KEY_PREFIX: 'env:' };
    const backend = new MemcachedBackend({ servers: [b.address], timeoutMs: 100, connectTimeoutMs: 100, keyPrefix: 'opt:' }, env);
    try {
      expect(await servers(backend)).toEqual([b.address]);
      expect(backend.boundMs).toBe(200);
      expect(backend.keyFor('k')).toBe('opt:k');
    } finally {
      await backend.close();
    }
  });

  it('ignores an invalid variable when the option is given explicitly', async () => {
    const backend = new MemcachedBackend({ timeoutMs: 100 }, { CACHEKIT_MEMCACHED_TIMEOUT: 'soon' });
    expect(backend.boundMs).toBe(2_100);
    await backend.close();
  });

  const invalidEnv: [string, string][] = [
    ['CACHEKIT_MEMCACHED_SERVERS', '[not json'],
    ['CACHEKIT_MEMCACHED_SERVERS', '{"a":1}'],
    ['CACHEKIT_MEMCACHED_SERVERS', '[11211]'],
    ['CACHEKIT_MEMCACHED_SERVERS', '[]'],
    ['CACHEKIT_MEMCACHED_SERVERS', 'localhost'],
    ['CACHEKIT_MEMCACHED_SERVERS', '127.0.0.1:11211,'],
    ['CACHEKIT_MEMCACHED_TIMEOUT', 'soon'],
    ['CACHEKIT_MEMCACHED_TIMEOUT', '0'],
    ['CACHEKIT_MEMCACHED_CONNECT_TIMEOUT', '-2'],
    ['CACHEKIT_MEMCACHED_KEY_PREFIX', 'two words'],
    ['CACHEKIT_MEMCACHED_MAX_ITEM_SIZE_BYTES', '1.5'],
    ['CACHEKIT_MEMCACHED_MAX_ITEM_SIZE_BYTES', 'big'],
  ];
  for (const [variable, value] of invalidEnv) {
    it(`rejects ${variable}=${JSON.stringify(value)} naming the variable`, () => {
      const error = configError(() => MemcachedBackend.fromEnv({ [variable]: value }));
      expect(error.option).toBe(variable);
      expect(error.message).toContain(variable);
    });
  }

  it('fails fast, not at construction, when the configured servers are down', async () => {
    const refused = await refusedAddress();
    const backend = MemcachedBackend.fromEnv({ CACHEKIT_MEMCACHED_SERVERS: refused.address, CACHEKIT_MEMCACHED_TIMEOUT: '0.2' });
    try {
      const [healthy, details] = await backend.healthCheck();
      expect(healthy).toBe(false);
      expect(details.backend_type).toBe('memcached');
      await expect(backend.get('k')).rejects.toMatchObject({ name: 'BackendError', kind: 'transient' });
    } finally {
      await backend.close();
    }
  });
});
