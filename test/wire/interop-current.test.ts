/**
 * cache(fn) current with cachekit-py 0.26 / cachekit-ts 0.2, end to end on real servers: -0 values, the interop
 * refusals (reserved namespaces, `..`, numbers past 2^53, a prefixed backend), the AAD of encrypted entries over the
 * logical backend key (backend keyPrefix included, no fallback to the bare key), and the envelope's bin payload.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemcachedBackend } from '../../src/backends/memcached.js';
import { cache } from '../../src/loaders/cache.js';
import { Encryptor, EncryptionError } from '../../src/wire/encryption.js';
import { createEnvelopeFormat } from '../../src/wire/envelope.js';
import { CanonicalMsgpackError } from '../../src/wire/interop.js';
import { ConfigError } from '../../src/shared/options.js';
import { CacheStack } from '../../src/stack/stack.js';
import { fetchValue } from '../next/fixtures.js';
import { toLegacyEnvelope } from '../support/bytes-fixtures.js';
import { redisFixture } from '../support/redis-fixture.js';
import { startMemcached, type ServerHandle } from '../support/servers.js';
import { hex, loadOurVectors, loadVectors, toHex } from './vectors.js';

const redis = redisFixture();
const ours = loadOurVectors();
const KEY = randomBytes(32).toString('hex');
const sealedContext = (cacheKey: string) => ({ tenantId: 'default', cacheKey, format: 'msgpack', compressed: true });

describe('interop values and arguments', () => {
  it('a -0 value (bare, in arrays, in maps) is stored as float64 -0.0 and comes back -0 from L2 and L1', async () => {
    const backend = redis.backend();
    const v = ours.value_vectors.find((x: { name: string }) => x.name === 'negative_zero_in_array_and_map');
    // The L1 copy is trusted a minute here (1 s by default in interop mode: a loaded machine could pass that).
    const f = cache(async (_id: number) => ({ a: [-0, 0], b: -0 }), {
      backend,
      ttl: 60,
      l1: { maxTtlSeconds: 60 },
      interop: { namespace: 't', operation: 'signs' },
    });
    expect(await f(1)).toEqual({ a: [-0, 0], b: -0 });
    expect(toHex((await backend.get(f.keyFor(1)))!)).toBe(v.canonical_msgpack_hex);
    const l1 = await f.detailed(1);
    expect(l1.status).toBe('l1');
    expect(Object.is(l1.value.b, -0) && Object.is(l1.value.a[0], -0) && Object.is(l1.value.a[1], 0)).toBe(true);
    const bare = cache(async () => -0, { backend: redis.backend(), ttl: 60, l1: false, interop: { namespace: 't', operation: 'bare' } });
    await bare();
    expect(toHex((await backend.get(bare.keyFor()))!)).toBe('cb8000000000000000');
    const hit = await bare.detailed();
    expect(hit.status).toBe('l2');
    expect(Object.is(hit.value, -0)).toBe(true);
    // As an argument -0 is 0 (integral floats collapse): one key for both.
    expect(f.keyFor(-0)).toBe(f.keyFor(0));
  });

  it('a Date in a loader value comes back a Date from L2 and L1 (sentinel map on the wire, as cachekit-ts reads it); a Python-written sentinel with microseconds too', async () => {
    const backend = redis.backend();
    const at = new Date(Date.UTC(2024, 0, 1, 12, 30, 45, 123));
    const f = cache(async (_id: number) => ({ at, list: [at], n: 1 }), {
      backend,
      ttl: 60,
      l1: { maxTtlSeconds: 60 },
      interop: { namespace: 't', operation: 'dates' },
    });
    const miss = await f.detailed(1);
    expect(miss.status).toBe('miss');
    const stored = toHex((await backend.get(f.keyFor(1)))!);
    // On the wire: the sentinel map of wire-format.md, Python isoformat with +00:00.
    expect(Buffer.from(stored, 'hex').toString('latin1')).toContain('__datetime__');
    expect(Buffer.from(stored, 'hex').toString('latin1')).toContain('2024-01-01T12:30:45.123000+00:00');
    const l1 = await f.detailed(1);
    expect(l1.status).toBe('l1');
    expect(l1.value.at).toBeInstanceOf(Date);
    expect(l1.value.at.getTime()).toBe(at.getTime());
    expect(l1.value.list[0]).toBeInstanceOf(Date);
    const other = cache(async (_id: number) => ({ at, list: [at], n: 1 }), { backend, ttl: 60, l1: false, interop: { namespace: 't', operation: 'dates' } });
    const l2 = await other.detailed(1);
    expect(l2.status).toBe('l2');
    expect(l2.value.at).toBeInstanceOf(Date);
    expect(l2.value.at.getTime()).toBe(at.getTime());
    // What a Python service writes (the shared value vector, microseconds): a Date floored to the millisecond.
    const v = loadVectors('interop-mode.json').value_vectors.find((x: { name: string }) => x.name === 'datetime_sentinel_value');
    await backend.set(other.keyFor(2), hex(v.canonical_msgpack_hex), 60);
    const fromPython = await other.detailed(2);
    expect(fromPython.status).toBe('l2');
    expect(fromPython.value).toBeInstanceOf(Date);
    expect((fromPython.value as unknown as Date).toISOString()).toBe('2024-01-01T12:30:45.123Z');
  });

  it('reserved namespaces and ".." are ConfigErrors at construction, naming the option', () => {
    for (const v of ours.error_vectors.filter((x: { option?: string }) => x.option)) {
      const make = () => cache(async () => 1, { backend: null, interop: { namespace: v.namespace, operation: v.operation } });
      expect(make, v.name).toThrow(ConfigError);
      expect(make, v.name).toThrow(`option \`${v.option}\``);
    }
    expect(cache(async () => 1, { backend: null, interop: { namespace: 'nsx', operation: 'ns' } }).keyFor()).toMatch(/^nsx:ns:/);
    expect(() => cache(async () => 1, { backend: null, interop: { namespace: ['ns'] as never, operation: 'op' } })).toThrow(
      /`interop.namespace` must be a string, got object/,
    );
  });

  it('a number past 2^53 in the arguments rejects the call naming the argument, before the loader runs; a BigInt is the way', async () => {
    let calls = 0;
    const f = cache(
      async (id: number | bigint, _opts?: { ids: (number | bigint)[] }) => {
        calls++;
        return String(id);
      },
      { backend: redis.backend(), ttl: 60, interop: { namespace: 't', operation: 'ids' } },
    );
    await expect(f(2 ** 53)).rejects.toThrow(CanonicalMsgpackError);
    await expect(f(2 ** 53)).rejects.toThrow(/BigInt \(9007199254740992n\).*\(at args\[0\]\)/);
    await expect(f(1, { ids: [2, 2 ** 60] })).rejects.toThrow('(at args[1].ids[1])');
    expect(calls).toBe(0);
    expect(await f(2n ** 53n)).toBe('9007199254740992');
    expect(calls).toBe(1);
  });

  it('a loader value holding a number past 2^53 is returned but not stored (it would come back a BigInt)', async () => {
    const backend = redis.backend();
    const f = cache(async () => ({ id: 2 ** 60 }), { backend, ttl: 60, interop: { namespace: 't', operation: 'unsafe' } });
    expect(await f()).toEqual({ id: 2 ** 60 });
    expect(await backend.exists(f.keyFor())).toBe(false);
  });

  it('a backend with a keyPrefix is refused: at construction, or (resolved later) on the call, naming `backend`', async () => {
    const prefixed = redis.backend({ keyPrefix: 'app:' });
    const make = () => cache(async () => 1, { backend: prefixed, interop: { namespace: 'users', operation: 'get' } });
    expect(make).toThrow(ConfigError);
    expect(make).toThrow(/option `backend` must have no keyPrefix.*"app:"/);
    const rt = new CacheStack({ backend: prefixed, namespace: 'app' });
    let calls = 0;
    const lazy = cache(async () => ++calls, { stack: async () => rt, interop: { namespace: 'users', operation: 'lazy' } });
    await expect(lazy()).rejects.toThrow(/option `backend` must have no keyPrefix/);
    expect(calls).toBe(0);
    await rt.close();
  });
});

describe('cache.secure: the AAD binds the logical backend key (backend keyPrefix included), never the bare key', () => {
  let memcached: ServerHandle;
  const memcachedBackends: MemcachedBackend[] = [];
  beforeAll(async () => {
    memcached = await startMemcached();
  });
  afterAll(async () => {
    await Promise.all(memcachedBackends.map((b) => b.close()));
    await memcached?.stop();
  });
  const onMemcached = (keyPrefix: string) => {
    const backend = new MemcachedBackend({ servers: [memcached.address], keyPrefix }, {});
    memcachedBackends.push(backend);
    return backend;
  };
  const onRedis = (keyPrefix: string) => redis.backend({ keyPrefix });

  for (const [name, make, raw] of [
    ['redis keyPrefix', onRedis, () => redis.backend()],
    ['memcached keyPrefix', onMemcached, () => onMemcached('')],
  ] as const) {
    it(`${name}: sealed over prefix + key; moved to another prefix or sealed over the bare key (as before) it is a miss, evicted and recomputed`, async () => {
      const store = raw();
      let calls = 0;
      const rates = (backend: ReturnType<typeof make>) =>
        cache(
          async function rates(day: number) {
            calls++;
            return { day, eur: 1.08 };
          },
          { backend, ttl: 60, l1: false, encryption: { masterKey: KEY } },
        );
      const a = rates(make('app-a:'));
      await a(1);
      const key = a.keyFor(1);
      const frame = (await store.get(`app-a:${key}`))!;
      const encryptor = new Encryptor({ masterKey: KEY });
      expect(encryptor.decrypt(frame, sealedContext(`app-a:${key}`)).length).toBeGreaterThan(0);
      expect(() => encryptor.decrypt(frame, sealedContext(key))).toThrow(EncryptionError);
      expect(await a.detailed(1)).toMatchObject({ status: 'l2', value: { day: 1 } });
      expect(calls).toBe(1);

      // Copied under another prefix of the same store: it fails authentication there.
      await store.set(`app-b:${key}`, frame, 60);
      expect(await rates(make('app-b:')).detailed(1)).toMatchObject({ status: 'miss', value: { day: 1 } });
      expect(calls).toBe(2);

      // What earlier releases wrote through a prefixed backend: AAD over the bare key. Not opened, evicted, recomputed.
      const legacy = encryptor.encrypt(hex('81a176c3'), sealedContext(key));
      await store.set(`app-a:${key}`, legacy, 60);
      expect(await a.detailed(1)).toMatchObject({ status: 'miss', value: { day: 1 } });
      expect(calls).toBe(3);
      expect(Buffer.from((await store.get(`app-a:${key}`))!).equals(Buffer.from(legacy))).toBe(false);
      expect(encryptor.decrypt((await store.get(`app-a:${key}`))!, sealedContext(`app-a:${key}`)).length).toBeGreaterThan(0);
    });
  }

  it('Next handler entries on a prefixed backend bind it too', async () => {
    const store = redis.backend();
    const rt = new CacheStack({ backend: onRedis('site:'), namespace: 'shop', encryption: { masterKey: KEY } });
    await rt.entries.set('cachekit:shop:f:k1', { lastModified: 1, tags: [], value: fetchValue() }, 60);
    const frame = (await store.get('site:cachekit:shop:f:k1'))!;
    const context = (cacheKey: string) => ({ tenantId: 'shop', cacheKey, format: 'cachekit-next', compressed: false });
    const encryptor = new Encryptor({ masterKey: KEY });
    expect(encryptor.decrypt(frame, context('site:cachekit:shop:f:k1')).length).toBeGreaterThan(0);
    expect(() => encryptor.decrypt(frame, context('cachekit:shop:f:k1'))).toThrow(EncryptionError);
    await rt.close();
  });
});

describe('ByteStorage envelope on the wire (protocol 1.1)', () => {
  it('cache(fn) writes the compressed payload as MessagePack bin, and reads an entry in the legacy array-of-integers form', async () => {
    const backend = redis.backend();
    let calls = 0;
    const f = cache(
      async function listing(n: number) {
        calls++;
        return { rows: Array.from({ length: n }, (_, i) => `row ${i}`) };
      },
      { backend, ttl: 60, l1: false },
    );
    for (const n of [0, 3, 2000]) {
      await f(n);
      const stored = Buffer.from((await backend.get(f.keyFor(n)))!);
      expect(stored[0]).toBe(0x94);
      expect([0xc4, 0xc5, 0xc6]).toContain(stored[1]);
      // The same envelope with the payload as an array of uints (array16 or array32 past 65535 bytes): still a hit.
      await backend.set(f.keyFor(n), toLegacyEnvelope(stored), 60);
      const before = calls;
      expect(await f.detailed(n)).toMatchObject({ status: 'l2', value: { rows: { length: n } } });
      expect(calls).toBe(before);
    }
    const codec = await createEnvelopeFormat();
    const big = randomBytes(70_000);
    expect(Buffer.from(codec.decode(toLegacyEnvelope(codec.encode(big))).data).equals(big)).toBe(true);
  });
});
