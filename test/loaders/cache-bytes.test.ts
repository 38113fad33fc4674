/**
 * cache(fn) end to end on the bytes it stores: `cache.secure` (encryption; the L1 keeps ciphertext), interop mode
 * (what a Python cachekit service writes and reads), coherence of other instances' L1 over Redis pub/sub, `paths`,
 * and `detailed()`.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../src/backends/memory.js';
import { cache } from '../../src/loaders/cache.js';
import { pathTag } from '../../src/loaders/options.js';
import type { CacheOptions } from '../../src/loaders/types.js';
import { Encryptor, EncryptionError } from '../../src/wire/encryption.js';
import { createEnvelopeFormat } from '../../src/wire/envelope.js';
import { encodeInteropValue, Float64, interopKey } from '../../src/wire/interop.js';
import { ConfigError } from '../../src/shared/options.js';
import { decodeRecord, encodeRecord, peekExpiry, RECORD_FORMAT, sealedStore } from '../../src/store/record-store.js';
import { encodeValue } from '../../src/wire/typed-value.js';
import { createCacheHandler } from '../../src/next/cache-handler.js';
import { configuredStack, getStack, resetStacks } from '../../src/stack/stack.js';
import { anotherInstance } from '../support/instances.js';
import { redisFixture } from '../support/redis-fixture.js';
import { hex, loadVectors, untag } from '../wire/vectors.js';

const plainNumbers = (v: unknown): unknown =>
  v instanceof Float64
    ? v.value
    : Array.isArray(v)
      ? v.map(plainNumbers)
      : v && typeof v === 'object' && v.constructor === Object
        ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plainNumbers(x)]))
        : v;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const KEY_A = randomBytes(32).toString('hex');
const KEY_B = randomBytes(32).toString('hex');

// One redis-server for the file; each RedisBackend object stands for one instance's connections.
const redis = redisFixture();
const redisBackend = () => redis.backend();

/** Flips one byte of the stored value (in place, keeping the TTL). */
async function tamper(backend: MemoryBackend, key: string, index: (length: number) => number): Promise<void> {
  const stored = (await backend.get(key))!;
  const at = index(stored.length);
  if (at < 0 || at >= stored.length) throw new Error(`byte ${at} is outside the ${stored.length}-byte value`);
  stored[at] = stored[at]! ^ 0x01;
  await backend.set(key, stored, 60);
}

describe('cache(fn) entries: the ByteStorage envelope', () => {
  it('stores the record as MessagePack in a checked envelope; a corrupt byte is a miss and a new call, never a wrong value', async () => {
    const backend = new MemoryBackend();
    let calls = 0;
    const f = cache(
      async function report(n: number) {
        calls++;
        return { rows: Array.from({ length: n }, (_, i) => `row ${i}`) };
      },
      { backend, ttl: 60, l1: false },
    );
    await f(200);
    const stored = (await backend.get(f.keyFor(200)))!;
    const { data, format } = (await createEnvelopeFormat()).decode(stored);
    expect(format).toBe(RECORD_FORMAT);
    expect(decodeRecord(data)).toMatchObject({ v: { rows: expect.arrayContaining(['row 199']) } });
    expect(stored.length).toBeLessThan(data.length); // compressed
    // Layout: [bin data, [8 checksum bytes], original size (uint16 here), "cachekit-next/2" (16 bytes)].
    const places: [string, (n: number) => number][] = [
      ['format', (n) => n - 1],
      ['checksum', (n) => n - 16 - 3 - 1],
      ['middle of the data', (n) => Math.floor(n / 2)],
      ['start of the data', () => 10],
    ];
    for (const [place, at] of places) {
      await tamper(backend, f.keyFor(200), at);
      const before = calls;
      expect((await f(200)).rows).toHaveLength(200);
      expect(calls, `corrupt byte: ${place}`).toBe(before + 1);
    }
  });
});

describe('peekExpiry: the expiry of a record without decoding it', () => {
  it('reads what a full decode reads, for every number shape, and declines other shapes', () => {
    for (const e of [0, 5, 127, 128, 255, 300, 65_535, 70_000, 2 ** 32 + 5, Date.now() + 300_000, 1.5e12, 253402300799999]) {
      const payload = encodeRecord({ e, v: 'x', s: 1, f: 2 });
      expect(peekExpiry(payload), String(e)).toBe(e);
      expect(decodeRecord(payload).e, String(e)).toBe(e);
    }
    expect(peekExpiry(encodeRecord({ v: 1, s: 1, f: 2 }))).toBeNull();
    expect(peekExpiry(encodeValue({ e: 5 }))).toBeUndefined(); // not a record array: decode instead
    expect(peekExpiry(encodeValue([1, 2]))).toBeUndefined();
    expect(peekExpiry(Uint8Array.of(0x95, 0xcb, 0x42))).toBeUndefined(); // truncated
  });
});

describe('cache(fn): every call gets its own copy', () => {
  it('a caller that mutates its value never changes what later callers get (L1 and L2; plain, secure, interop)', async () => {
    const variants: [string, CacheOptions<[number]>][] = [
      ['plain', {}],
      ['secure', { encryption: { masterKey: KEY_A } }],
      ['interop', { interop: { namespace: 'copies', operation: 'list' } }],
    ];
    for (const [variant, options] of variants) {
      const backend = new MemoryBackend();
      const f = cache(async (n: number) => ({ items: Array.from({ length: n }, (_, i) => i), meta: { sorted: true } }), {
        name: `copies${variant}`,
        backend,
        ttl: 60,
        ...options,
      });
      const first = await f(3); // the computed value itself
      first.items.push(99);
      const fromL1 = await f.detailed(3);
      expect(fromL1.status, variant).toBe('l1');
      expect(fromL1.value.items, variant).toEqual([0, 1, 2]);
      fromL1.value.items.reverse();
      fromL1.value.meta.sorted = false;
      expect((await f(3)).items, variant).toEqual([0, 1, 2]);
      const other = cache(async (_n: number) => ({ items: [] as number[], meta: { sorted: true } }), {
        name: `copies${variant}`,
        backend: anotherInstance(backend),
        ttl: 60,
        ...options,
      });
      const fromL2 = await other.detailed(3);
      expect(fromL2.status, variant).toBe('l2');
      fromL2.value.items.length = 0;
      expect(await other(3), variant).toEqual({ items: [0, 1, 2], meta: { sorted: true } });
    }
  });
});

describe('cache.secure', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const name of ['CACHEKIT_MASTER_KEY', 'CACHEKIT_PREVIOUS_MASTER_KEYS', 'CACHEKIT_ENCRYPTION_FAIL_CLOSED']) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
  });

  it('without a master key it is a ConfigError naming CACHEKIT_MASTER_KEY; a bad key names the variable, never echoes it', () => {
    delete process.env.CACHEKIT_MASTER_KEY;
    expect(() =>
      cache.secure(
        async function f() {
          return 1;
        },
        { backend: null },
      ),
    ).toThrow(ConfigError);
    expect(() =>
      cache.secure(
        async function f() {
          return 1;
        },
        { backend: null },
      ),
    ).toThrow(/CACHEKIT_MASTER_KEY/);
    process.env.CACHEKIT_MASTER_KEY = 'abcd';
    expect(() =>
      cache.secure(
        async function f() {
          return 1;
        },
        { backend: null },
      ),
    ).toThrow(/CACHEKIT_MASTER_KEY.*32 bytes/);
    expect(() =>
      cache(
        async function f() {
          return 1;
        },
        { backend: null, encryption: { masterKey: KEY_A, bogus: 1 } as never },
      ),
    ).toThrow(/bogus/);
    expect(() =>
      cache(
        async function f() {
          return 1;
        },
        { backend: null, encryption: { masterKey: KEY_A }, tenant: 3 as never },
      ),
    ).toThrow(/tenant/);
  });

  it('stores only ciphertext (L2 and L1) and reads it back on every instance with the key', async () => {
    process.env.CACHEKIT_MASTER_KEY = KEY_A;
    const backend = new MemoryBackend();
    let calls = 0;
    const secret = { card: '4111-1111-1111-1111', owner: 'alice' };
    const fn = async function account(id: number) {
      calls++;
      return { id, ...secret };
    };
    const a = cache.secure(fn, { backend, ttl: 60 });
    expect(await a(7)).toEqual({ id: 7, ...secret });
    const stored = Buffer.from((await backend.get(a.keyFor(7)))!);
    expect(stored.subarray(0, 2).toString('latin1')).toBe('cE');
    expect(stored.includes(Buffer.from('4111-1111'))).toBe(false);
    expect(stored.includes(Buffer.from('alice'))).toBe(false);
    expect((await a.detailed(7)).status).toBe('l1');
    const b = cache.secure(fn, { backend: anotherInstance(backend), ttl: 60 });
    expect(await b.detailed(7)).toMatchObject({ value: { id: 7, ...secret }, status: 'l2' });
    expect(calls).toBe(1);
    // A plain (unencrypted) wrapper on the same key cannot read the ciphertext: a miss, never garbage.
    const plain = cache(fn, { backend, ttl: 60 });
    expect((await plain.detailed(7)).status).toBe('miss');
  });

  it('the L1 of an encrypted cache holds the ciphertext, not the value', async () => {
    const backend = new MemoryBackend();
    const store = sealedStore({ backend, l1: {}, timeoutMs: 1000, breaker: false, name: 't' }, new Encryptor({ masterKey: KEY_A }));
    await store.set('k', { v: { pin: '9876' }, s: Date.now(), f: Date.now() + 60_000 }, 'tenant-1', 60);
    const l1 = await store.tiered.lookup('k');
    expect(l1?.source).toBe('l1');
    const bytes = Buffer.from(l1!.value as Uint8Array);
    expect(bytes.subarray(0, 2).toString('latin1')).toBe('cE');
    expect(bytes.includes(Buffer.from('9876'))).toBe(false);
    expect((await store.lookup('k', 'tenant-1'))?.record.v).toEqual({ pin: '9876' });
  });

  it('fail-open: a tampered byte anywhere, a value moved to another key, another tenant or another master key are misses, evicted, recomputed', async () => {
    const backend = new MemoryBackend();
    let calls = 0;
    const make = (options: CacheOptions<[string]> = {}) =>
      cache(
        async function profile(id: string) {
          calls++;
          return `profile of ${id}`;
        },
        { backend, ttl: 60, l1: false, encryption: { masterKey: KEY_A }, tenant: (id: string) => `org-${id.slice(0, 1)}`, ...options },
      );
    const f = make();
    // Header, fingerprint, nonce, ciphertext body and tag: each region tampered once. (Lengths vary by a few bytes:
    // the envelope's checksum bytes take one or two bytes each.)
    const regions: [string, (n: number) => number][] = [
      ['magic', () => 0],
      ['version', () => 2],
      ['fingerprint', () => 5],
      ['nonce', () => 3 + 16 + 3],
      ['body', (n) => Math.floor(n / 2)],
      ['tag', (n) => n - 1],
    ];
    for (const [region, at] of regions) {
      await f('a1');
      const before = calls;
      await tamper(backend, f.keyFor('a1'), at);
      expect(await f('a1')).toBe('profile of a1');
      expect(calls, `tampered ${region}`).toBe(before + 1);
    }
    // Moved to another key: the AAD binds the key.
    await f('a2');
    await backend.set(f.keyFor('a3'), (await backend.get(f.keyFor('a2')))!, 60);
    let before = calls;
    expect(await f('a3')).toBe('profile of a3');
    expect(calls).toBe(before + 1);
    // Another tenant: same key, tenant function says otherwise.
    const otherTenant = make({ tenant: () => 'org-z' });
    await f('a4');
    before = calls;
    expect(await otherTenant('a4')).toBe('profile of a4');
    expect(calls).toBe(before + 1);
    // Another master key (unknown fingerprint): a miss, and the bad entry is evicted before the new write.
    const otherKey = make({ encryption: { masterKey: KEY_B } });
    await f('a5');
    before = calls;
    expect(await otherKey('a5')).toBe('profile of a5');
    expect(calls).toBe(before + 1);
    expect(await f('a5')).toBe('profile of a5'); // rewritten under KEY_B: KEY_A's reader misses again
    expect(calls).toBe(before + 2);
  });

  it('rotation: values of a previous master key are read (picked by fingerprint); new writes use the current key', async () => {
    const backend = new MemoryBackend();
    let calls = 0;
    const fn = async function rates() {
      calls++;
      return { eur: 1.08 };
    };
    const old = cache(fn, { backend, ttl: 60, encryption: { masterKey: KEY_A } });
    await old();
    const rotated = cache(fn, { backend, ttl: 60, l1: false, encryption: { masterKey: KEY_B, previousMasterKeys: [KEY_A] } });
    expect(await rotated.detailed()).toMatchObject({ value: { eur: 1.08 }, status: 'l2' });
    expect(calls).toBe(1);
    await rotated.invalidate();
    await rotated();
    const fingerprint = (await backend.get(rotated.keyFor()))!.subarray(3, 19);
    expect(Buffer.from(fingerprint)).toEqual(new Encryptor({ masterKey: KEY_B }).fingerprint('default'));
  });

  it('fail-closed: an undecryptable value is an EncryptionError for the caller and stays stored', async () => {
    process.env.CACHEKIT_MASTER_KEY = KEY_A;
    process.env.CACHEKIT_ENCRYPTION_FAIL_CLOSED = 'true';
    const backend = new MemoryBackend();
    const f = cache.secure(
      async function balance() {
        return 100;
      },
      { backend, ttl: 60, l1: false },
    );
    await f();
    await tamper(backend, f.keyFor(), (n) => n - 3);
    await expect(f()).rejects.toBeInstanceOf(EncryptionError);
    expect(await backend.exists(f.keyFor())).toBe(true);
  });
});

describe('cache(fn, { interop }): shares entries with a Python cachekit service', () => {
  const vectors = loadVectors('interop-mode.json');

  it('derives every key vector exactly', () => {
    for (const v of vectors.key_vectors) {
      const f = cache(async (..._args: unknown[]) => null, { backend: null, interop: { namespace: v.namespace, operation: v.operation } });
      expect(f.keyFor(...(untag(v.args) as unknown[])), v.name).toBe(v.expected_key);
    }
  });

  it('writes the plain canonical MessagePack value under the shared key, and reads what Python wrote', async () => {
    const backend = redisBackend();
    let calls = 0;
    const getUser = cache(
      async (id: number) => {
        calls++;
        return { name: 'alice', age: 30 + id - 42 };
      },
      { backend, ttl: 60, interop: { namespace: 'users', operation: 'get_user' } },
    );
    expect(await getUser(42)).toEqual({ name: 'alice', age: 30 });
    const key = 'users:get_user:61598716255080080f6456eb065c2e51badfaa4320b0efe97469c29cffee8875';
    expect(getUser.keyFor(42)).toBe(key);
    // Byte for byte the value vector "issue_example_object".
    expect(Buffer.from((await backend.get(key))!).toString('hex')).toBe('82a36167651ea46e616d65a5616c696365');
    const ttl = await backend.getTtl(key);
    expect(ttl).toBeGreaterThan(50);
    expect(ttl).toBeLessThanOrEqual(60);

    // A Python service wrote every value vector under its own key: each is read as the value, without a call.
    const reader = cache(
      async (n: number) => {
        calls++;
        return n;
      },
      { backend, ttl: 60, interop: { namespace: 'py', operation: 'values' } },
    );
    for (const [i, v] of (vectors.value_vectors as { name: string; value: unknown; canonical_msgpack_hex: string }[]).entries()) {
      await backend.set(interopKey('py', 'values', [i]), hex(v.canonical_msgpack_hex), 60);
      const before = calls;
      const got = await reader.detailed(i);
      expect(got.status, v.name).toBe('l2');
      expect(calls).toBe(before);
      // Floats come back as plain numbers (Float64 marks them only on the way in); a datetime sentinel as a Date
      // floored to the millisecond (as cachekit-ts reads it: what a JS loader's miss would have returned).
      const expected = plainNumbers(untag(v.value)) as { __datetime__?: boolean; value?: string };
      if (expected?.__datetime__ === true) expect(got.value, v.name).toEqual(new Date(expected.value!.replace(/(\.\d{3})\d*/, '$1')));
      else expect(got.value, v.name).toEqual(expected);
    }
  });

  it("a Python service's delete or rewrite is seen within 1 s even on Redis (it announces nothing)", async () => {
    const backend = redisBackend();
    let n = 0;
    const f = cache(async (_id: number) => ++n, { backend, ttl: 300, interop: { namespace: 'py', operation: 'counter' } });
    expect(await f(1)).toBe(1);
    await expect.poll(async () => (await f.detailed(1)).status, { timeout: 2000, interval: 20 }).toBe('l1');
    await backend.set(f.keyFor(1), encodeInteropValue(41), 300); // what the Python side writes
    await sleep(1100);
    expect(await f.detailed(1)).toMatchObject({ value: 41, status: 'l2' });
  });

  it('integers beyond 2^53 round-trip as BigInt', async () => {
    const backend = redisBackend();
    const big = cache(async (n: bigint) => ({ n, next: n + 1n }), { backend, ttl: 60, interop: { namespace: 't', operation: 'big' } });
    const value = 18446744073709551614n;
    expect(await big(value)).toEqual({ n: value, next: value + 1n });
    const other = cache(async (_n: bigint) => ({ n: 0n, next: 0n }), {
      backend: anotherInstance(backend),
      ttl: 60,
      interop: { namespace: 't', operation: 'big' },
    });
    expect(await other.detailed(value)).toMatchObject({ status: 'l2', value: { n: value, next: value + 1n } });
  });

  it('encrypted interop: reads the encryption vector Python wrote, and writes what Python reads', async () => {
    const backend = redisBackend();
    const v = vectors.encryption_vectors[0];
    await backend.set(v.cache_key, hex(v.ciphertext_hex), 60);
    let calls = 0;
    const options = {
      backend,
      ttl: 60,
      interop: { namespace: 'users', operation: 'get_user' },
      encryption: { masterKey: v.master_key_hex },
      tenant: v.tenant_id,
    };
    const getUser = cache(async (_id: number) => {
      calls++;
      return { name: 'bob', age: 1 };
    }, options);
    expect(await getUser.detailed(42)).toMatchObject({ status: 'l2', value: { name: 'alice', age: 30 } });
    expect(calls).toBe(0);
    // Our write: nonce || ciphertext || tag over the plain value, AAD over the interop key: the vector's layout.
    await getUser.invalidate(42);
    await getUser(42);
    const written = (await backend.get(v.cache_key))!;
    const plain = new Encryptor({ masterKey: v.master_key_hex }).decryptInterop(written, v.tenant_id, v.cache_key);
    expect(plain.toString('hex')).toBe(Buffer.from(encodeInteropValue({ name: 'bob', age: 1 })).toString('hex'));
  });

  it('a value that is not canonical MessagePack is a miss; options that cannot apply are ConfigErrors naming them', async () => {
    const backend = redisBackend();
    const f = cache(async (id: number) => ({ id }), { backend, ttl: 60, interop: { namespace: 'x', operation: 'y' } });
    await backend.set(f.keyFor(1), Buffer.from([0xc1]), 60);
    expect(await f.detailed(1)).toMatchObject({ status: 'miss', value: { id: 1 } });
    const base = { backend: null, interop: { namespace: 'x', operation: 'y' } };
    expect(() => cache(async () => 1, { ...base, tags: ['t'] })).toThrow(/tags/);
    expect(() => cache(async () => 1, { ...base, staleTtl: 5 })).toThrow(/staleTtl/);
    expect(() => cache(async () => 1, { ...base, key: 'k' })).toThrow(/key/);
    expect(() => cache(async () => 1, { backend: null, interop: { namespace: 'Users', operation: 'y' } })).toThrow(/interop\.namespace/);
    expect(() =>
      cache(
        async function getUser() {
          return 1;
        },
        { backend: null, interop: { namespace: 'users' } },
      ),
    ).toThrow(/interop\.operation/);
    expect(
      cache(
        async function get_user() {
          return 1;
        },
        { backend: null, interop: { namespace: 'users' } },
      ).keyFor(),
    ).toMatch(/^users:get_user:/);
  });
});

describe('cache(fn): other instances and Next', () => {
  it('on Redis, invalidate() and writes on one instance reach the L1 of the others at once', async () => {
    let version = 1;
    const fn = async function settings() {
      return version;
    };
    // Two backend objects: two instances' connections and subscriptions.
    const a = cache(fn, { backend: redisBackend(), ttl: 300 });
    const b = cache(fn, { backend: redisBackend(), ttl: 300 });
    expect(await a()).toBe(1);
    expect(await b.detailed()).toMatchObject({ value: 1, status: 'l2' });
    // The subscription going live flushes the L1 once (nothing cached before it was protected): wait for that.
    await expect.poll(async () => (await b.detailed()).status, { timeout: 2000, interval: 20 }).toBe('l1');
    await expect.poll(async () => (await a.detailed()).status, { timeout: 2000, interval: 20 }).toBe('l1');
    version = 2;
    await a.invalidate();
    await expect.poll(async () => (await b.detailed()).value, { timeout: 2000, interval: 20 }).toBe(2);
    // b recomputed and wrote 2; a's L1 (which never held 2) must not keep the old 1 either.
    version = 3;
    await b.invalidate();
    await expect.poll(async () => a(), { timeout: 2000, interval: 20 }).toBe(3);
  });

  it('over backends without messages, an L1 copy is trusted 1 s by default (l1.maxTtlSeconds)', async () => {
    // Memcached, File and CachekitIO carry no messages; a custom backend stands for them (MemoryBackend is process-local).
    const store = new MemoryBackend();
    const shared = {
      get: (k: string) => store.get(k),
      set: (k: string, v: Uint8Array, t?: number) => store.set(k, v, t),
      delete: (k: string) => store.delete(k),
      exists: (k: string) => store.exists(k),
      healthCheck: () => store.healthCheck(),
    };
    let version = 1;
    const fn = async function flags() {
      return version;
    };
    const a = cache(fn, { backend: shared, ttl: 300 });
    const b = cache(fn, { backend: anotherInstance(shared), ttl: 300 });
    await a();
    expect(await b()).toBe(1);
    version = 2;
    await a.invalidate();
    expect(await b()).toBe(1);
    await sleep(1100);
    expect(await b.detailed()).toMatchObject({ value: 2, status: 'miss' });
  });

  it('paths: revalidatePath(path) (its implicit tag) invalidates the entries on every instance', async () => {
    const backend = redisBackend();
    const stack = getStack({ backend, namespace: 'paths-test', deploymentId: 'd1' });
    expect(pathTag('/')).toBe('_N_T_/');
    expect(pathTag('/blog/')).toBe('_N_T_/blog');
    expect(pathTag('/café')).toBe('_N_T_/caf%C3%A9');
    expect(() => pathTag('blog')).toThrow(/paths/);
    let calls = 0;
    const fn = async function posts() {
      calls++;
      return calls;
    };
    const a = cache(fn, { backend, stack, ttl: 300, paths: ['/blog'] });
    const b = cache(fn, { backend: redisBackend(), stack, ttl: 300, paths: ['/blog'] });
    expect(await a()).toBe(1);
    expect(await b()).toBe(1);
    await sleep(5);
    // What Next's revalidatePath('/blog') hands the handlers.
    await stack.revalidateTags(['_N_T_/blog']);
    expect(await a.detailed()).toMatchObject({ value: 2, status: 'miss' });
    expect(await b()).toBe(2);
  });

  it("inside a Next app (withCachekit's options set), entries default to the handlers' backend and namespace", async () => {
    const saved = process.env.CACHEKIT_NEXT_OPTIONS;
    process.env.CACHEKIT_NEXT_OPTIONS = JSON.stringify({ backend: { type: 'redis', url: redis.url() }, namespace: 'shop' });
    try {
      const f = cache(
        async function price(sku: string) {
          return sku.length;
        },
        { ttl: 60 },
      );
      expect(f.keyFor('abc')).toMatch(/^cachekit:shop:fn:price:/);
      expect(f.info().backend).toBe('unresolved');
      expect(await f('abc')).toBe(3);
      expect(f.info().backend).toBe('redis');
      const check = redisBackend();
      expect(await check.exists(f.keyFor('abc'))).toBe(true);
    } finally {
      if (saved === undefined) delete process.env.CACHEKIT_NEXT_OPTIONS;
      else process.env.CACHEKIT_NEXT_OPTIONS = saved;
      await resetStacks();
    }
  });

  it('copies of one wrapper in a process (one per Next route bundle) share one L1, one single-flight and one info()', async () => {
    const backend = redisBackend();
    let version = 1;
    const load = async function menu() {
      await sleep(20);
      return version;
    };
    const inPage = cache(load, { backend, ttl: 300 });
    const inRoute = cache(load, { backend, ttl: 300 });
    const [x, y] = await Promise.all([inPage.detailed(), inRoute.detailed()]);
    expect([x.status, y.status]).toEqual(['miss', 'miss']); // the second joined the first's call
    expect(inRoute.info()).toMatchObject({ misses: 1, hits: 1, calls: 1 });
    expect((await inRoute.detailed()).status).toBe('l1');
    version = 2;
    await inPage.invalidate();
    expect(await inRoute.detailed()).toMatchObject({ value: 2, status: 'miss' });
    expect(inPage.info()).toEqual(inRoute.info());
  });

  it("with a handler module of one's own, stack: CacheHandler.stack gives loaders its store and its tags", async () => {
    const backend = redisBackend();
    const CacheHandler = createCacheHandler({ backend, namespace: 'shop-module', deploymentId: 'd1' });
    let n = 0;
    const price = cache(
      async function price(sku: string) {
        return `${sku}:${++n}`;
      },
      { stack: CacheHandler.stack, tags: ['prices'], ttl: 300 },
    );
    expect(await price('a')).toBe('a:1');
    expect(price.info().backend).toBe('redis');
    expect(await backend.exists(price.keyFor('a'))).toBe(true);
    await sleep(5);
    // What Next calls on the handler for revalidateTag('prices').
    await new CacheHandler({}).revalidateTag('prices');
    expect(await price.detailed('a')).toMatchObject({ value: 'a:2', status: 'miss' });
  });

  it('a tagged and an untagged wrapper of one name do not share a core: the tagged one still hears its tags', async () => {
    const saved = process.env.CACHEKIT_NEXT_OPTIONS;
    process.env.CACHEKIT_NEXT_OPTIONS = JSON.stringify({ backend: { type: 'redis', url: redis.url() }, namespace: 'shared-core-tags' });
    try {
      let n = 0;
      // Both on the Next handlers' stack by default; only the tagged one needs it for tag checks.
      const untagged = cache(
        async function stock() {
          return ++n;
        },
        { ttl: 300 },
      );
      const tagged = cache(
        async function stock() {
          return ++n;
        },
        { ttl: 300, tags: ['stock'] },
      );
      await untagged.invalidate();
      expect(await tagged()).toBe(1);
      await sleep(5);
      await (await configuredStack()).revalidateTags(['stock']);
      expect(await tagged.detailed()).toMatchObject({ value: 2, status: 'miss' });
    } finally {
      if (saved === undefined) delete process.env.CACHEKIT_NEXT_OPTIONS;
      else process.env.CACHEKIT_NEXT_OPTIONS = saved;
      await resetStacks();
    }
  });

  it('detailed(): status, stale and time of each call; joined callers share the status of the call they joined', async () => {
    const backend = new MemoryBackend();
    let computeMs = 0;
    const f = cache(
      async function slow(n: number) {
        const started = performance.now();
        await sleep(30);
        computeMs = performance.now() - started;
        return n * 2;
      },
      { backend, ttl: 0.2, staleTtl: 60 },
    );
    const [first, joined] = await Promise.all([f.detailed(2), f.detailed(2)]);
    expect(first).toMatchObject({ value: 4, status: 'miss', stale: false });
    expect(joined).toMatchObject({ value: 4, status: 'miss' });
    // The call's time includes the function's (a relation, not a threshold).
    expect(first.ms).toBeGreaterThanOrEqual(computeMs);
    expect(await f.detailed(2)).toMatchObject({ value: 4, status: 'l1', stale: false });
    await sleep(250);
    expect(await f.detailed(2)).toMatchObject({ value: 4, stale: true });
    expect(f.info()).toMatchObject({ backend: 'memory', misses: 1 });
  });
});
