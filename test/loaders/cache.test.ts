import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CachekitIOBackend } from '../../src/backends/cachekitio.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { RedisBackend } from '../../src/backends/redis.js';
import { setDefaultBackend } from '../../src/stack/resolve.js';
import { cache } from '../../src/loaders/cache.js';
import { hashArgs } from '../../src/wire/loader-key.js';
import { ConfigError } from '../../src/shared/options.js';
import { getStack } from '../../src/stack/stack.js';
import { FakeCachekitIO } from '../support/fake-cachekitio.js';
import { anotherInstance } from '../support/instances.js';
import { redisFixture } from '../support/redis-fixture.js';
import { refusedAddress } from '../support/servers.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('cache(fn): keys', () => {
  it('hashes arguments canonically: object key order does not matter, values do', () => {
    expect(hashArgs([{ a: 1, b: [2, { c: 3, d: 4 }] }])).toBe(hashArgs([{ b: [2, { d: 4, c: 3 }], a: 1 }]));
    expect(hashArgs([{ a: 1 }])).not.toBe(hashArgs([{ a: 2 }]));
    expect(hashArgs([1, 2])).not.toBe(hashArgs([2, 1]));
    expect(hashArgs(['x', undefined])).toBe(hashArgs(['x']));
    const f = cache(
      async function load(q: { a: number; b: string }) {
        return q.a;
      },
      { backend: null },
    );
    expect(f.keyFor({ a: 1, b: 'x' })).toBe(f.keyFor({ b: 'x', a: 1 }));
    expect(f.keyFor({ a: 1, b: 'x' })).toMatch(/^cachekit:default:fn:load:[0-9a-f]{64}$/);
  });

  it('explicit key wins (string or function), namespace and prefix scope it', () => {
    const f = cache(async (id: number) => id, { backend: null, name: 'user', key: (id) => `u${id}`, namespace: 'ns', keyPrefix: 'p:' });
    expect(f.keyFor(7)).toBe('p:ns:fn:user:u7');
    const g = cache(async (id: number) => id, { backend: null, name: 'cfg', key: 'all' });
    expect(g.keyFor(1)).toBe(g.keyFor(2));
  });

  it('rejects bad options naming them', () => {
    expect(() => cache(async () => 1, { backend: null })).toThrow(ConfigError);
    expect(() =>
      cache(
        async function f() {
          return 1;
        },
        { backend: null, ttl: -1 },
      ),
    ).toThrow(/ttl/);
    expect(() =>
      cache(
        async function f() {
          return 1;
        },
        { backend: null, tags: [''] },
      ),
    ).toThrow(/tags/);
    expect(() =>
      cache(
        async function f() {
          return 1;
        },
        { backend: null, stack: 3 as never },
      ),
    ).toThrow(/stack/);
    expect(() =>
      cache(
        async function f() {
          return 1;
        },
        { backend: null, bogus: 1 } as never,
      ),
    ).toThrow(/bogus/);
  });
});

describe("cache(fn, keyParts, { revalidate, tags }): Next's unstable_cache form", () => {
  it('keyParts scope the keys; revalidate is freshness, then stale-while-revalidate; false keeps it until a tag', async () => {
    const backend = new MemoryBackend();
    setDefaultBackend(backend);
    try {
      let calls = 0;
      const anonymous = cache(async (id: number) => ({ id, call: ++calls }), ['products', 'v2'], { revalidate: 0.2, tags: ['products'] });
      expect(anonymous.keyFor(1)).toMatch(/^cachekit:default:fn:products:v2:[0-9a-f]{64}$/);
      expect(
        cache(
          async function load() {
            return 1;
          },
          ['v2'],
        ).keyFor(),
      ).toMatch(/^cachekit:default:fn:load:v2:/);
      expect(
        cache(
          async function load() {
            return 1;
          },
          undefined,
          { revalidate: false },
        ).keyFor(),
      ).toMatch(/^cachekit:default:fn:load:/);

      expect(await anonymous(1)).toEqual({ id: 1, call: 1 });
      expect(await anonymous(1)).toEqual({ id: 1, call: 1 });
      await sleep(250);
      // Stale: served at once, one call refreshes it in the background.
      expect(await anonymous.detailed(1)).toMatchObject({ value: { id: 1, call: 1 }, stale: true });
      await expect.poll(async () => (await anonymous(1)).call, { timeout: 2000 }).toBe(2);

      const forever = cache(async () => ++calls, ['forever'], { revalidate: false });
      await forever();
      const ttl = await backend.getTtl(forever.keyFor());
      expect(ttl).toBeGreaterThan(29 * 24 * 3600);
    } finally {
      setDefaultBackend(null);
    }
  });

  it('rejects what unstable_cache would not accept, naming it', () => {
    expect(() => cache(async () => 1, undefined, {})).toThrow(/keyParts/);
    expect(() => cache(async () => 1, ['k'], { revalidate: 0 })).toThrow(/revalidate/);
    expect(() => cache(async () => 1, ['k'], { revalidate: -5 })).toThrow(/revalidate/);
    expect(() => cache(async () => 1, ['k', 3] as never, {})).toThrow(/keyParts/);
    expect(() => cache(async () => 1, ['k'], { revalidate: 5, ttl: 3 } as never)).toThrow(/ttl/);
  });
});

describe('cache(fn) on MemoryBackend', () => {
  it('counts hits and misses (L1 and L2), invalidates', async () => {
    const backend = new MemoryBackend();
    let calls = 0;
    const f = cache(
      async function add(a: number, b: number) {
        calls++;
        return { sum: a + b };
      },
      { backend, ttl: 60 },
    );
    expect(await f(1, 2)).toEqual({ sum: 3 });
    expect(await f(1, 2)).toEqual({ sum: 3 });
    expect(calls).toBe(1);
    expect(f.info()).toMatchObject({ hits: 1, misses: 1, l1Hits: 1, l2Hits: 0, calls: 1 });
    // A second wrapper (another process's L1) reads L2.
    const g = cache(
      async function add(a: number, b: number) {
        calls++;
        return { sum: a + b };
      },
      { backend: anotherInstance(backend), ttl: 60 },
    );
    expect(await g(1, 2)).toEqual({ sum: 3 });
    expect(g.info()).toMatchObject({ hits: 1, l2Hits: 1, misses: 0 });
    expect(await f.invalidate(1, 2)).toBe(true);
    expect(await backend.exists(f.keyFor(1, 2))).toBe(false);
    expect(await f(1, 2)).toEqual({ sum: 3 });
    expect(calls).toBe(2);
    expect(f.info().latency.computeMs).toBeGreaterThanOrEqual(0);
  });

  it('invalidate on one instance reaches the others within l1.maxTtlSeconds', async () => {
    const backend = new MemoryBackend();
    let version = 1;
    const fn = async function settings() {
      return version;
    };
    const a = cache(fn, { backend, l1: { maxTtlSeconds: 0.15 } });
    const b = cache(fn, { backend: anotherInstance(backend), l1: { maxTtlSeconds: 0.15 } });
    expect(await a()).toBe(1);
    expect(await b()).toBe(1);
    version = 2;
    await a.invalidate();
    expect(await a()).toBe(2);
    await sleep(250);
    expect(await b()).toBe(2);
  });

  it('expires after ttl', async () => {
    let calls = 0;
    const f = cache(
      async function now() {
        return ++calls;
      },
      { backend: new MemoryBackend(), ttl: 0.15 },
    );
    expect(await f()).toBe(1);
    expect(await f()).toBe(1);
    await sleep(250);
    expect(await f()).toBe(2);
  });

  it('single-flight: 100 concurrent calls make one call', async () => {
    let calls = 0;
    const f = cache(
      async function slow(x: string) {
        calls++;
        await sleep(50);
        return x.toUpperCase();
      },
      { backend: new MemoryBackend() },
    );
    const results = await Promise.all(Array.from({ length: 100 }, () => f('a')));
    expect(new Set(results)).toEqual(new Set(['A']));
    expect(calls).toBe(1);
  });

  it('errors propagate to every waiter and are not cached', async () => {
    let calls = 0;
    const f = cache(
      async function boom() {
        calls++;
        await sleep(10);
        if (calls === 1) throw new Error('nope');
        return 'ok';
      },
      { backend: new MemoryBackend() },
    );
    const settled = await Promise.allSettled([f(), f(), f()]);
    expect(settled.every((s) => s.status === 'rejected')).toBe(true);
    expect(await f()).toBe('ok');
    expect(calls).toBe(2);
  });

  it('stale-while-revalidate: serves the stale value and refreshes once in the background', async () => {
    let calls = 0;
    const f = cache(
      async function version() {
        calls++;
        await sleep(30);
        return calls;
      },
      { backend: new MemoryBackend(), ttl: 0.4, staleTtl: 5 },
    );
    expect(await f()).toBe(1);
    await sleep(450);
    const stale = await Promise.all([f(), f(), f(), f()]);
    expect(stale).toEqual([1, 1, 1, 1]);
    await sleep(100);
    expect(calls).toBe(2);
    expect(await f()).toBe(2);
    expect(calls).toBe(2);
  });
});

describe('cache(fn) on Redis (cross-instance)', () => {
  const redis = redisFixture();
  const make = redis.backend;

  it('stampede: concurrent callers on two instances make one call', async () => {
    let calls = 0;
    const fn = async function report(id: number) {
      calls++;
      await sleep(200);
      return { id, at: calls };
    };
    const a = cache(fn, { backend: make(), namespace: 'stampede' });
    const b = cache(fn, { backend: make(), namespace: 'stampede' });
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b)(9)));
    expect(calls).toBe(1);
    expect(results.every((r) => r.id === 9 && r.at === 1)).toBe(true);
  });

  it('a crashed holder blocks only until its lease expires', async () => {
    const backend = make();
    let calls = 0;
    const f = cache(
      async function crash() {
        calls++;
        return 'computed';
      },
      { backend, namespace: 'crash', lockTimeoutMs: 300, lockWaitMs: 5000 },
    );
    // Simulates an instance that took the lock and died: nobody releases it.
    const token = await make().acquireLock(f.keyFor(), 300);
    expect(token).not.toBeNull();
    const started = Date.now();
    expect(await f()).toBe('computed');
    expect(calls).toBe(1);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('never hangs: past lockWaitMs a waiter computes itself', async () => {
    const backend = make();
    let calls = 0;
    const f = cache(
      async function held() {
        calls++;
        return 'x';
      },
      { backend, namespace: 'wait', lockTimeoutMs: 60_000, lockWaitMs: 200 },
    );
    await make().acquireLock(f.keyFor(), 60_000);
    expect(await f()).toBe('x');
    expect(calls).toBe(1);
  });

  it('stale-while-revalidate across instances: one background refresh in total', async () => {
    let calls = 0;
    const fn = async function feed() {
      calls++;
      await sleep(100);
      return calls;
    };
    const a = cache(fn, { backend: make(), namespace: 'swr', ttl: 0.3, staleTtl: 30 });
    const b = cache(fn, { backend: make(), namespace: 'swr', ttl: 0.3, staleTtl: 30 });
    expect(await a()).toBe(1);
    expect(await b()).toBe(1);
    await sleep(350);
    expect(await Promise.all([a(), b(), a(), b()])).toEqual([1, 1, 1, 1]);
    await sleep(200);
    expect(calls).toBe(2);
    expect(await a()).toBe(2);
    expect(await b()).toBe(2);
    await sleep(150);
    expect(calls).toBe(2);
  });

  it('presets: minimal takes no cross-instance lock, production does', async () => {
    let calls = 0;
    const fn = async function preset() {
      calls++;
      await sleep(100);
      return calls;
    };
    const m1 = cache.minimal(fn, { backend: make(), namespace: 'min' });
    const m2 = cache.minimal(fn, { backend: make(), namespace: 'min' });
    await Promise.all([m1(), m2()]);
    expect(calls).toBe(2);
    calls = 0;
    const p1 = cache.production(fn, { backend: make(), namespace: 'prod' });
    const p2 = cache.production(fn, { backend: make(), namespace: 'prod' });
    await Promise.all([p1(), p2()]);
    expect(calls).toBe(1);
  });

  it('tags: a revalidation with an expire duration serves the old value once while one call refreshes it', async () => {
    const stack = getStack({ backend: make(), namespace: 'tag-stale-app' });
    let calls = 0;
    const f = cache(
      async function page() {
        calls++;
        await sleep(30);
        return calls;
      },
      { backend: make(), stack, tags: ['pages'] },
    );
    expect(await f()).toBe(1);
    await sleep(5);
    await stack.revalidateTags(['pages'], { expire: 3600 });
    expect(await f()).toBe(1);
    await sleep(150);
    expect(calls).toBe(2);
    expect(await f()).toBe(2);
    expect(calls).toBe(2);
  });

  it('tags: CacheStack.revalidateTags invalidates entries on every instance', async () => {
    const stack = getStack({ backend: make(), namespace: 'tagged-app' });
    let calls = 0;
    const fn = async function product(id: number) {
      calls++;
      return `p${id}@${calls}`;
    };
    const a = cache(fn, { backend: make(), stack, tags: ['products'] });
    const b = cache(fn, { backend: make(), stack, tags: ['products'] });
    expect(a.keyFor(1)).toMatch(/^cachekit:tagged-app:fn:product:/);
    expect(await a(1)).toBe('p1@1');
    expect(await b(1)).toBe('p1@1');
    await sleep(5); // tag events are compared with the entry's write time in ms
    await stack.revalidateTags(['products']);
    expect(await a(1)).toBe('p1@2');
    expect(await b(1)).toBe('p1@2');
    expect(calls).toBe(2);
  });
});

describe('cache.io on a CachekitIO API (local fake server)', () => {
  const saved = { ...process.env };
  let fake: FakeCachekitIO;
  beforeAll(async () => {
    fake = await FakeCachekitIO.start();
  });
  afterAll(async () => {
    for (const name of ['CACHEKIT_API_KEY', 'CACHEKIT_API_URL', 'CACHEKIT_ALLOW_CUSTOM_HOST']) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
    await fake?.stop();
  });

  it('without CACHEKIT_API_KEY it throws a ConfigError naming it', () => {
    delete process.env.CACHEKIT_API_KEY;
    expect(() =>
      cache.io(async function noKey() {
        return 1;
      }),
    ).toThrow(/CACHEKIT_API_KEY/);
  });

  it('uses CachekitIOBackend.fromEnv(): entries land in the API, its lock endpoints stop a stampede', async () => {
    process.env.CACHEKIT_API_KEY = 'ck_live_test';
    process.env.CACHEKIT_API_URL = fake.url;
    process.env.CACHEKIT_ALLOW_CUSTOM_HOST = 'true';
    let calls = 0;
    const fn = async function ioFn(n: number) {
      calls++;
      await sleep(150);
      return n * 2;
    };
    const a = cache.io(fn, { namespace: 'io' });
    const b = cache.io(fn, { namespace: 'io', l1: false });
    expect(await Promise.all([a(21), b(21), a(21), b(21)])).toEqual([42, 42, 42, 42]);
    expect(calls).toBe(1);
    expect(fake.store.size).toBe(1);
    expect(fake.requests.filter((r) => r.method === 'POST' && r.url.includes('/lock')).length).toBeGreaterThanOrEqual(1);
  });

  it('cache.secure over CachekitIO: the service only ever receives ciphertext (zero-knowledge)', async () => {
    process.env.CACHEKIT_API_KEY = 'ck_live_test';
    process.env.CACHEKIT_API_URL = fake.url;
    process.env.CACHEKIT_ALLOW_CUSTOM_HOST = 'true';
    const backend = CachekitIOBackend.fromEnv();
    try {
      const secret = 'patient record 4711: diagnosis confidential';
      const f = cache.secure(
        async function chart(id: number) {
          return { id, secret };
        },
        { backend, namespace: 'zk', encryption: { masterKey: 'ab'.repeat(32) } },
      );
      expect(await f(4711)).toEqual({ id: 4711, secret });
      const uploads = fake.requests.filter((r) => r.method === 'PUT');
      expect(uploads.length).toBeGreaterThan(0);
      const stored = [...fake.store].filter(([key]) => key.includes('zk'));
      expect(stored.length).toBe(1);
      for (const [, entry] of stored) {
        expect(Buffer.from(entry.value).includes(Buffer.from('confidential'))).toBe(false);
        expect(Buffer.from(entry.value).subarray(0, 2).toString('latin1')).toBe('cE');
      }
      const reader = cache.secure(
        async function chart(_id: number) {
          return { id: 0, secret: '' };
        },
        { backend: CachekitIOBackend.fromEnv(), namespace: 'zk', l1: false, encryption: { masterKey: 'ab'.repeat(32) } },
      );
      expect(await reader.detailed(4711)).toMatchObject({ status: 'l2', value: { id: 4711, secret } });
    } finally {
      await backend.close();
    }
  });
});

describe('cache(fn) with an unreachable backend', () => {
  it('still answers by calling the function (faults are misses, never errors)', async () => {
    const { address } = await refusedAddress();
    const backend = new RedisBackend({ url: `redis://${address}`, connectTimeoutMs: 500 });
    try {
      let calls = 0;
      const f = cache(
        async function offline() {
          return ++calls;
        },
        { backend, l1: false, breaker: false },
      );
      expect(await f()).toBe(1);
      expect(await f()).toBe(2);
    } finally {
      await backend.close();
    }
  });
});
