import { describe, expect, it, vi } from 'vitest';
import { MemoryBackend } from '../../src/backends/memory.js';
import { BackendError, type Backend, type HealthDetails } from '../../src/protocol/backend.js';
import { ConfigError } from '../../src/shared/options.js';
import { TieredCache } from '../../src/store/tiered.js';
import type { Serializer } from '../../src/wire/frame.js';

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | null) => (value === null ? null : new TextDecoder().decode(value));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A plain-object backend (no TTL capability) whose behaviour each test steers. */
function scriptedBackend(overrides: Partial<Backend> = {}) {
  const store = new Map<string, Uint8Array>();
  const calls = { get: 0, set: 0, delete: 0, exists: 0 };
  const backend: Backend = {
    async get(key) {
      calls.get++;
      return store.get(key) ?? null;
    },
    async set(key, value) {
      calls.set++;
      store.set(key, value.slice());
    },
    async delete(key) {
      calls.delete++;
      return store.delete(key);
    },
    async exists(key) {
      calls.exists++;
      return store.has(key);
    },
    async healthCheck(): Promise<[boolean, HealthDetails]> {
      return [true, { latency_ms: 0, backend_type: 'scripted' }];
    },
    ...overrides,
  };
  return { backend, store, calls };
}

describe('TieredCache', () => {
  it('serves a written value from L1 without touching L2', async () => {
    const { backend, calls } = scriptedBackend();
    const cache = new TieredCache({ backend });
    await cache.set('k', bytes('v'));
    expect(await cache.lookup('k')).toEqual({ value: bytes('v'), source: 'l1' });
    expect(calls.get).toBe(0);
    expect(calls.set).toBe(1);
  });

  it('fills L1 from an L2 hit and answers the next read from L1', async () => {
    const { backend, store, calls } = scriptedBackend();
    store.set('k', bytes('from-l2'));
    const cache = new TieredCache({ backend });
    expect(await cache.lookup('k')).toEqual({ value: bytes('from-l2'), source: 'l2' });
    expect(await cache.lookup('k')).toEqual({ value: bytes('from-l2'), source: 'l1' });
    expect(calls.get).toBe(1);
    expect(cache.stats()).toMatchObject({ l1Hits: 1, l2Hits: 1, misses: 0, hitRatio: 1 });
  });

  it('never keeps an L1 entry past its TTL, whether written here or read from L2', async () => {
    const backend = new MemoryBackend();
    const cache = new TieredCache({ backend });
    await cache.set('written', bytes('w'), 1);
    await backend.set('read', bytes('r'), 1);
    expect(text(await cache.get('read'))).toBe('r'); // now in L1 with the remaining L2 TTL
    expect(cache.hasLocal('read')).toBe(true);
    await sleep(1_100);
    expect(cache.hasLocal('written')).toBe(false);
    expect(cache.hasLocal('read')).toBe(false);
    expect(await cache.get('written')).toBeNull();
    expect(await cache.get('read')).toBeNull();
  });

  it('with expiresAt, reads are one plain get and the L1 copy ends at the expiry the value carries', async () => {
    const backend = new MemoryBackend();
    let withTtl = 0;
    const getWithTtl = backend.getWithTtl.bind(backend);
    backend.getWithTtl = (key) => {
      withTtl++;
      return getWithTtl(key);
    };
    const codec: Serializer<{ until: number | null }> = {
      encode: (value) => bytes(JSON.stringify(value)),
      decode: (data) => JSON.parse(text(data)!) as { until: number | null },
    };
    const cache = new TieredCache({ backend, serializer: codec, expiresAt: (value) => value.until });
    // Stored for an hour in the L2, but the value says it ends in 150 ms: the L1 copy follows the value.
    await backend.set('soon', codec.encode({ until: Date.now() + 150 }), 3600);
    await backend.set('never', codec.encode({ until: null }), 3600);
    expect(await cache.lookup('soon')).toMatchObject({ source: 'l2' });
    expect(await cache.lookup('never')).toMatchObject({ source: 'l2' });
    expect(withTtl).toBe(0);
    expect(cache.hasLocal('soon')).toBe(true);
    await sleep(200);
    expect(cache.hasLocal('soon')).toBe(false);
    expect(cache.hasLocal('never')).toBe(true);

    // A value that cannot tell (sealed bytes): no TTL query either; the L1 copy lives as long as l1.maxTtlSeconds allows.
    const opaque = new TieredCache({ backend, l1: { maxTtlSeconds: 0.1 }, expiresAt: () => undefined });
    await backend.set('sealed', bytes('x'), 3600);
    expect(await opaque.lookup('sealed')).toMatchObject({ source: 'l2' });
    expect(withTtl).toBe(0);
    expect(opaque.hasLocal('sealed')).toBe(true);
    await sleep(150);
    expect(opaque.hasLocal('sealed')).toBe(false);
  });

  it('keeps a value whose L2 write failed for a few seconds only: the other instances never saw it', async () => {
    let failing = true;
    const { backend, store } = scriptedBackend({
      async set(key, value) {
        if (failing) throw new BackendError('timed out', { kind: 'timeout', backend: 'scripted', operation: 'set' });
        store.set(key, value.slice());
      },
    });
    const cache = new TieredCache({ backend, onError: () => {}, breaker: false });
    expect(await cache.set('k', bytes('mine'), 3600)).toBe(false);
    expect(await cache.lookup('k')).toEqual({ value: bytes('mine'), source: 'l1' });
    store.set('k', bytes('theirs')); // what every other instance reads
    await sleep(5_100);
    expect(text(await cache.get('k'))).toBe('theirs');
    failing = false;
    expect(await cache.set('k', bytes('stored'), 3600)).toBe(true);
    await sleep(5_100);
    expect(await cache.lookup('k')).toEqual({ value: bytes('stored'), source: 'l1' }); // a stored write keeps its TTL
  }, 15_000);

  it('bounds L1 lifetime by l1.maxTtlSeconds, also for backends that cannot report TTLs', async () => {
    const { backend, store } = scriptedBackend();
    store.set('k', bytes('old'));
    const cache = new TieredCache({ backend, l1: { maxTtlSeconds: 0.2 } });
    expect(text(await cache.get('k'))).toBe('old');
    store.set('k', bytes('new')); // another instance wrote it
    expect(text(await cache.get('k'))).toBe('old');
    await sleep(250);
    expect(text(await cache.get('k'))).toBe('new');
  });

  it('keeps L1 within its byte budget, evicting least recently used, and skips values over the budget', async () => {
    const { backend, calls } = scriptedBackend();
    const cache = new TieredCache({ backend, l1: { maxSizeMb: 1000 / (1024 * 1024) } });
    for (let i = 0; i < 10; i++) await cache.set(`k${i}`, new Uint8Array(200));
    const stats = cache.stats();
    expect(stats.l1Bytes).toBeLessThanOrEqual(1000);
    expect(cache.hasLocal('k0')).toBe(false);
    expect(cache.hasLocal('k9')).toBe(true);

    await cache.set('huge', new Uint8Array(5000));
    expect(cache.hasLocal('huge')).toBe(false);
    expect((await cache.get('huge'))?.byteLength).toBe(5000); // from L2
    expect(calls.get).toBe(1);
  });

  it('replaces an older L1 value when a new one is too large for L1', async () => {
    const { backend } = scriptedBackend();
    const cache = new TieredCache({ backend, l1: { maxSizeMb: 1000 / (1024 * 1024) } });
    await cache.set('k', bytes('small'));
    await cache.set('k', new Uint8Array(5000));
    expect((await cache.get('k'))?.byteLength).toBe(5000);
  });

  it('makes one L2 call for concurrent misses of one key (single-flight)', async () => {
    const { backend, store, calls } = scriptedBackend();
    const slow = scriptedBackend({
      async get(key) {
        calls.get++;
        await sleep(50);
        return store.get(key) ?? null;
      },
    });
    store.set('k', bytes('v'));
    const cache = new TieredCache({ backend: { ...backend, get: slow.backend.get } });
    const results = await Promise.all(Array.from({ length: 100 }, () => cache.get('k')));
    expect(results.every((r) => text(r) === 'v')).toBe(true);
    expect(calls.get).toBe(1);
    const [a, b] = await Promise.all([cache.get('missing'), cache.get('missing')]);
    expect(a).toBeNull();
    expect(b).toBeNull();
    expect(calls.get).toBe(2);
  });

  it('does not let a read that raced a write put the older value into L1', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { backend, store } = scriptedBackend();
    store.set('k', bytes('old'));
    const cache = new TieredCache({
      backend: {
        ...backend,
        async get(key) {
          const value = store.get(key) ?? null;
          await gate; // the read saw "old", then a write happens before it returns
          return value;
        },
      },
    });
    const reading = cache.get('k');
    await cache.set('k', bytes('new'));
    release();
    expect(text(await reading)).toBe('old');
    expect(text(await cache.get('k'))).toBe('new');
  });

  it('turns backend faults into misses and failed writes, reported through onError', async () => {
    const errors: BackendError[] = [];
    const { backend } = scriptedBackend({
      async get() {
        throw new BackendError('connection refused', { kind: 'transient', backend: 'scripted', operation: 'get' });
      },
      async set() {
        throw new Error('plain failure');
      },
      async delete() {
        throw new BackendError('down', { kind: 'transient', backend: 'scripted' });
      },
    });
    const cache = new TieredCache({ backend, onError: (e) => errors.push(e), breaker: false });
    expect(await cache.get('k')).toBeNull();
    expect(await cache.set('k', bytes('v'))).toBe(false);
    expect(text(await cache.get('k'))).toBe('v'); // the L1 still serves this process
    expect(await cache.delete('k')).toBe(false);
    expect(errors.map((e) => e.kind)).toEqual(['transient', 'unknown', 'transient']);
    expect(errors[1]!.message).toContain('plain failure');
    expect(cache.stats().errors).toBe(3);
  });

  it('answers a miss within timeoutMs when the backend never answers', async () => {
    const errors: BackendError[] = [];
    const { backend } = scriptedBackend({ get: () => new Promise<never>(() => {}) });
    const cache = new TieredCache({ backend, timeoutMs: 100, onError: (e) => errors.push(e) });
    const started = Date.now();
    expect(await cache.get('k')).toBeNull();
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(errors[0]?.kind).toBe('timeout');
  });

  it('opens the circuit after consecutive failures and probes again after the cooldown', async () => {
    let failing = true;
    const { backend, store, calls } = scriptedBackend();
    const cache = new TieredCache({
      backend: {
        ...backend,
        async get(key) {
          calls.get++;
          if (failing) throw new BackendError('down', { kind: 'transient', backend: 'scripted' });
          return store.get(key) ?? null;
        },
      },
      breaker: { failureThreshold: 3, cooldownMs: 200 },
      onError: () => {},
    });
    for (let i = 0; i < 10; i++) expect(await cache.get(`k${i}`)).toBeNull();
    expect(calls.get).toBe(3); // the 7 others were short-circuited
    failing = false;
    store.set('back', bytes('up'));
    await sleep(250);
    expect(text(await cache.get('back'))).toBe('up');
    expect(calls.get).toBe(4);
  });

  it('permanent errors do not open the circuit', async () => {
    const { backend, calls } = scriptedBackend();
    const cache = new TieredCache({
      backend: {
        ...backend,
        async get() {
          calls.get++;
          throw new BackendError('bad key', { kind: 'permanent', backend: 'scripted' });
        },
      },
      breaker: { failureThreshold: 2 },
      onError: () => {},
    });
    for (let i = 0; i < 5; i++) await cache.get(`k${i}`);
    expect(calls.get).toBe(5);
  });

  it('works L1-only with backend null', async () => {
    const cache = new TieredCache({ backend: null });
    expect(await cache.get('k')).toBeNull();
    expect(await cache.set('k', bytes('v'), 60)).toBe(true);
    expect(text(await cache.get('k'))).toBe('v');
    expect(await cache.delete('k')).toBe(true);
    expect(await cache.get('k')).toBeNull();
  });

  it('treats an undecodable stored value as a miss', async () => {
    const errors: BackendError[] = [];
    const codec: Serializer<{ n: number }> = {
      encode: (v) => bytes(JSON.stringify(v)),
      decode: (b) => JSON.parse(new TextDecoder().decode(b)) as { n: number },
    };
    const backend = new MemoryBackend();
    await backend.set('bad', bytes('{not json'));
    const cache = new TieredCache({ backend, serializer: codec, onError: (e) => errors.push(e) });
    expect(await cache.get('bad')).toBeNull();
    expect(errors[0]?.operation).toBe('decode');
    await cache.set('good', { n: 1 });
    expect(await cache.get('good')).toEqual({ n: 1 });
  });

  it('drops local entries on invalidateLocal and clearLocal', async () => {
    const backend = new MemoryBackend();
    const cache = new TieredCache({ backend });
    await cache.set('a', bytes('1'));
    await cache.set('b', bytes('2'));
    await backend.set('a', bytes('changed elsewhere'));
    cache.invalidateLocal('a');
    expect(text(await cache.get('a'))).toBe('changed elsewhere');
    await backend.set('b', bytes('also changed'));
    cache.clearLocal();
    expect(text(await cache.get('b'))).toBe('also changed');
  });

  it('rejects invalid options with a ConfigError naming the option', () => {
    const backend = new MemoryBackend();
    expect(() => new TieredCache({ backend, l1: { maxSizeMb: -1 } })).toThrow(/l1\.maxSizeMb/);
    expect(() => new TieredCache({ backend, timeoutMs: 0 })).toThrow(/timeoutMs/);
    expect(() => new TieredCache({ backend, l1Size: 3 } as never)).toThrow(ConfigError);
    expect(() => new TieredCache({ backend, l1Size: 3 } as never)).toThrow(/l1Size/);
    expect(() => new TieredCache({} as never)).toThrow(/backend/);
    expect(() => new TieredCache({ backend: null, l1: false })).toThrow(/l1/);
  });

  // CACHEKIT_L1_MAX_SIZE_MB is read at the edges (handlers, loaders) now: test/shared/env.test.ts.
  it('defaults the L1 budget to 100 MiB without reading the environment', async () => {
    vi.stubEnv('CACHEKIT_L1_MAX_SIZE_MB', 'lots');
    try {
      const cache = new TieredCache({ backend: null });
      await cache.set('big', new Uint8Array(2000));
      expect(cache.hasLocal('big')).toBe(true);
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
