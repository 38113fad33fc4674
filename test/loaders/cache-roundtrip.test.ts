/**
 * Property: whatever storable value a `cache(fn)` function returns, a hit returns the same (types, prototypes, `-0`,
 * `NaN`, holes, key order, bytes), from the L1 and from the L2, on every backend: memory, File, Redis, memcached and
 * the CachekitIO API (local fake), plain and `cache.secure`. Arbitrary values: test/support/storable-values.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CachekitIOBackend } from '../../src/backends/cachekitio.js';
import { FileBackend } from '../../src/backends/file.js';
import { MemcachedBackend } from '../../src/backends/memcached.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import type { Backend } from '../../src/protocol/backend.js';
import { cache } from '../../src/loaders/cache.js';
import type { CacheOptions } from '../../src/loaders/types.js';
import { FakeCachekitIO } from '../support/fake-cachekitio.js';
import { redisFixture } from '../support/redis-fixture.js';
import { difference } from '../support/same-value.js';
import { startMemcached, type ServerHandle } from '../support/servers.js';
import { storableValue } from '../support/storable-values.js';

const MASTER_KEY = 'cd'.repeat(32);
const redis = redisFixture();
let memcached: ServerHandle;
let fake: FakeCachekitIO;
let dir: string;
const closing: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  [memcached, fake, dir] = await Promise.all([startMemcached(), FakeCachekitIO.start(), mkdtemp(path.join(tmpdir(), 'ck-roundtrip-'))]);
});

afterAll(async () => {
  await Promise.all(closing.map((backend) => backend.close()));
  await Promise.all([memcached?.stop(), fake?.stop(), dir && rm(dir, { recursive: true, force: true })]);
});

function opened<B extends Backend & { close(): Promise<void> }>(backend: B): B {
  closing.push(backend);
  return backend;
}

const BACKENDS: [string, () => Backend, number][] = [
  ['memory', () => new MemoryBackend(), 400],
  ['File', () => opened(new FileBackend({ cacheDir: dir })), 100],
  ['Redis', () => redis.backend(), 150],
  ['memcached', () => opened(new MemcachedBackend({ servers: [memcached.address] })), 150],
  ['CachekitIO (fake)', () => opened(new CachekitIOBackend({ apiKey: 'ck_live_test', apiUrl: fake.url, allowCustomHost: true }, {})), 100],
];

/**
 * Every run: a new argument, the function returns the generated value; the miss must hand back that very value, and
 * the hit (from `source`) a deep, strict copy of it.
 */
async function roundTrips(backend: Backend, runs: number, options: Partial<CacheOptions<[number]>>, source: 'l1' | 'l2'): Promise<void> {
  let current: unknown;
  let id = 0;
  const name = `roundTrip${source}${options.encryption ? 'Sealed' : ''}`;
  const f = cache(async (_id: number) => current, { name, backend, ttl: 600, ...options, ...(source === 'l2' ? { l1: false } : {}) });
  await fc.assert(
    fc.asyncProperty(storableValue, async (value) => {
      current = value;
      const miss = await f.detailed(++id);
      expect(miss.status).toBe('miss');
      expect(miss.value).toBe(value);
      const hit = await f.detailed(id);
      expect(hit.status).toBe(source);
      const diff = difference(value, hit.value);
      expect(diff, diff ?? '').toBeNull();
    }),
    { numRuns: runs },
  );
}

describe.each(BACKENDS)('cache(fn) values on %s: a hit returns what the miss returned', (_name, create, runs) => {
  let backend: Backend;
  beforeAll(() => {
    backend = create();
  });

  it('from the L2', async () => {
    await roundTrips(backend, runs, {}, 'l2');
  });

  it('from the L1', async () => {
    await roundTrips(backend, runs, {}, 'l1');
  });

  it('cache.secure, from the L2 (decrypted)', async () => {
    await roundTrips(backend, Math.ceil(runs / 2), { encryption: { masterKey: MASTER_KEY } }, 'l2');
  });
});
