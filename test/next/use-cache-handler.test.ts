import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash, randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { CacheHandler as NextCacheHandler } from 'next/cache.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../src/backends/memory.js';
import { RedisBackend } from '../../src/backends/redis.js';
import { BackendError, type Backend } from '../../src/protocol/backend.js';
import { handlerClassFor } from '../../src/next/cache-handler.js';
import { resetStacks, CacheStack, type CachekitNextOptions } from '../../src/stack/stack.js';
import type { GetContext } from '../../src/wire/next-types.js';
import { useCacheEntrySerializer } from '../../src/wire/use-cache-entry.js';
import defaultHandler, {
  createUseCacheHandler,
  useCacheHandlerFor,
  useCacheStoreKey,
  type UseCacheEntry,
  type UseCacheHandler,
} from '../../src/next/use-cache-handler.js';
import { startRedis } from '../support/servers.js';
import { appPage, fetchValue } from './fixtures.js';

// Next's own default-handler test forces collections the same way; Node 20 attaches AsyncLocalStorage stores to
// every promise and resource, so a retained stream or promise keeps its request's store reachable.
setFlagsFromString('--expose-gc');
const forceGc = runInNewContext('gc') as () => void;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const encoder = new TextEncoder();
const INFINITE_CACHE = 0xfffffffe;

const stacks: CacheStack[] = [];
const closables: { close(): Promise<void> }[] = [];

afterEach(async () => {
  await Promise.all(stacks.splice(0).map((rt) => rt.close()));
  await Promise.all(closables.splice(0).map((c) => c.close()));
  await resetStacks();
});

/** Two "instances" (separate stacks, separate L1s) over one backend, as two `next start` processes would be. */
function instances(backend: Backend | (() => Backend), options: CachekitNextOptions = {}) {
  const make = () => {
    const rt = new CacheStack({ backend: typeof backend === 'function' ? backend() : backend, namespace: 'test-app', deploymentId: 'build-1', ...options });
    stacks.push(rt);
    const Legacy = handlerClassFor(() => rt);
    return { rt, handler: useCacheHandlerFor(() => rt), legacy: () => new Legacy({ serverDistDir: '/nonexistent/.next/server' }) };
  };
  return [make(), make()] as const;
}

function streamOf(...chunks: (string | Uint8Array)[]): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(typeof chunk === 'string' ? encoder.encode(chunk) : chunk);
      controller.close();
    },
  });
}

function entryOf(value: string | ReadableStream<Uint8Array>, overrides: Partial<UseCacheEntry> = {}): UseCacheEntry {
  return {
    value: typeof value === 'string' ? streamOf(value) : value,
    tags: ['posts'],
    stale: 300,
    timestamp: Date.now(),
    expire: 3600,
    revalidate: 900,
    ...overrides,
  };
}

const text = (entry: UseCacheEntry | undefined) => {
  expect(entry, 'a hit').toBeDefined();
  return new Response(entry!.value).text();
};

/** A stream that delivers `first`, then errors: a render that failed midway. */
function failingStream(first = 'partial'): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(first));
    },
    pull(controller) {
      controller.error(new Error('render failed midway'));
    },
  });
}

/** Runs `callback` as a request would: inside an AsyncLocalStorage store, of which it returns a weak reference. */
async function inRequest(callback: () => Promise<void>): Promise<WeakRef<object>> {
  const storage = new AsyncLocalStorage<object>();
  let ref: WeakRef<object> | undefined;
  await storage.run({ requestId: 'request' }, async () => {
    ref = new WeakRef(storage.getStore()!);
    await callback();
  });
  return ref!;
}

/** Whether the request's store has been garbage collected (nothing the handler kept still references it). */
async function collected(ref: WeakRef<object>): Promise<boolean> {
  for (let attempt = 0; attempt < 10; attempt++) {
    forceGc();
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return ref.deref() === undefined;
}

/** Counts L2 reads, to prove tag state is read in batches and kept locally. */
class CountingBackend extends MemoryBackend {
  /** Single-key reads (entries are read with getWithTtl; MemoryBackend's getMany reads through get). */
  gets = 0;
  batches = 0;
  override async getWithTtl(key: string) {
    this.gets++;
    return super.getWithTtl(key);
  }
  override async getMany(keys: readonly string[]) {
    this.batches++;
    return super.getMany(keys);
  }
}

/**
 * What a backend that sends keys as UTF-8 does (Redis, memcached, HTTP stores): a lone surrogate becomes U+FFFD, so
 * raw keys that differ only there collide. It hashes the UTF-8 bytes, as memcached clients do for long keys.
 */
class Utf8KeyedBackend extends MemoryBackend {
  static keyOf(key: string): string {
    return createHash('sha256').update(Buffer.from(key, 'utf8')).digest('hex');
  }
  override get(key: string) {
    return super.get(Utf8KeyedBackend.keyOf(key));
  }
  override getWithTtl(key: string) {
    return super.getWithTtl(Utf8KeyedBackend.keyOf(key));
  }
  override set(key: string, value: Uint8Array, ttlSeconds?: number) {
    return super.set(Utf8KeyedBackend.keyOf(key), value, ttlSeconds);
  }
  override getMany(keys: readonly string[]) {
    return super.getMany(keys.map((key) => Utf8KeyedBackend.keyOf(key)));
  }
}

describe("'use cache' handler (cacheHandlers)", () => {
  it('is a handler object Next accepts as `CacheHandler`, with the default export configured the same way', () => {
    const typed: NextCacheHandler = createUseCacheHandler({ backend: new MemoryBackend(), namespace: 'typed' });
    const asDefault: NextCacheHandler = defaultHandler;
    for (const handler of [typed, asDefault]) {
      for (const method of ['get', 'set', 'refreshTags', 'getExpiration', 'updateTags'] as const) expect(typeof handler[method]).toBe('function');
    }
    expect(typeof defaultHandler.expireTags).toBe('function');
  });

  it('round-trips bytes and metadata across instances, with a new stream on every get', async () => {
    const [a, b] = instances(new MemoryBackend());
    const binary = new Uint8Array([0, 1, 2, 255, 254, 0x0a]);
    const timestamp = Date.now() - 1_000;
    await a.handler.set(
      'key-1',
      Promise.resolve(entryOf(streamOf('chunk-1|', binary, '|chunk-3'), { tags: ['posts', 'post-1'], timestamp, stale: 30, revalidate: 60, expire: 600 })),
    );
    const first = await b.handler.get('key-1', []);
    const second = await b.handler.get('key-1', []);
    expect(first!.value).not.toBe(second!.value);
    const expected = Buffer.concat([Buffer.from('chunk-1|'), binary, Buffer.from('|chunk-3')]);
    expect(Buffer.from(await new Response(first!.value).arrayBuffer())).toEqual(expected);
    expect(Buffer.from(await new Response(second!.value).arrayBuffer())).toEqual(expected);
    expect({ ...first, value: undefined }).toEqual({ value: undefined, tags: ['posts', 'post-1'], stale: 30, timestamp, expire: 600, revalidate: 60 });
    expect(b.rt.useCacheEntries.stats()).toMatchObject({ l2Hits: 1, l1Hits: 1 });
    // A consumer that writes into its chunk cannot change what the next reader gets.
    const third = await b.handler.get('key-1', []);
    const reader = third!.value.getReader();
    const { value } = await reader.read();
    value!.fill(0);
    expect(Buffer.from(await new Response((await b.handler.get('key-1', []))!.value).arrayBuffer())).toEqual(expected);
    expect(await a.handler.get('absent', [])).toBeUndefined();
  });

  it('keeps its entries apart from legacy entries, in an L1 of its own budget', async () => {
    const backend = new MemoryBackend();
    const [a] = instances(backend, { useCacheL1: { maxSizeMb: 0.01 } });
    await a.legacy().set('same-key', fetchValue(), { fetchCache: true, tags: ['posts'] });
    await a.handler.set('same-key', Promise.resolve(entryOf('small')));
    expect(await text(await a.handler.get('same-key', []))).toBe('small');
    expect((await a.legacy().get('same-key', { kind: 'FETCH', tags: ['posts'] }))?.value?.kind).toBe('FETCH');
    await a.handler.set('big', Promise.resolve(entryOf(streamOf(randomBytes(50_000)), { tags: [] })));
    expect(a.rt.useCacheEntries.hasLocal(useCacheStoreKey(a.rt, 'big'))).toBe(false); // over the 10 kB budget
    expect(a.rt.entries.hasLocal(`cachekit:test-app:f:same-key`)).toBe(true);
    expect((await a.handler.get('big', []))!.value).toBeDefined(); // from the L2
    const [noL1] = instances(backend, { useCacheL1: false });
    await noL1.handler.get('same-key', []);
    await noL1.handler.get('same-key', []);
    expect(noL1.rt.useCacheEntries.stats()).toMatchObject({ l1Hits: 0, l2Hits: 2 });
  });

  it('validates useCacheL1, naming the option', () => {
    expect(() => createUseCacheHandler({ useCacheL1: { maxSizeMb: 0 } })).toThrow(/useCacheL1\.maxSizeMb/);
    expect(() => createUseCacheHandler({ useCacheL1: { maxSize: 1 } as never })).toThrow(/maxSize/);
    expect(() => createUseCacheHandler({ usecacheL1: {} } as never)).toThrow(/usecacheL1/);
    expect(() => new CacheStack({ backend: null, useCacheL1: false })).toThrow(/useCacheL1/);
  });

  describe('pending sets and value streams', () => {
    it('a get of a key whose set is still pending waits for it instead of missing', async () => {
      const [a] = instances(new MemoryBackend());
      let resolveEntry!: (entry: UseCacheEntry) => void;
      const setting = a.handler.set('racy', new Promise<UseCacheEntry>((resolve) => (resolveEntry = resolve)));
      let settled = false;
      const reading = a.handler.get('racy', []).then((entry) => {
        settled = true;
        return entry;
      });
      // Another key is not held up by it.
      expect(await a.handler.get('other', [])).toBeUndefined();
      await sleep(30);
      expect(settled).toBe(false);
      // The entry resolves, then its stream delivers slowly: the get waits for all of it.
      let push!: ReadableStreamDefaultController<Uint8Array>;
      resolveEntry(entryOf(new ReadableStream<Uint8Array>({ start: (c) => void (push = c) })));
      push.enqueue(encoder.encode('late '));
      await sleep(20);
      expect(settled).toBe(false);
      push.enqueue(encoder.encode('value'));
      push.close();
      expect(await text(await reading)).toBe('late value');
      await setting;
    });

    it('discards a stream that errors midway: nothing stored, the previous entry kept, no pending set left', async () => {
      const backend = new MemoryBackend();
      const errors: BackendError[] = [];
      const [a, b] = instances(backend, { onError: (e) => errors.push(e) });
      await expect(a.handler.set('fresh', Promise.resolve(entryOf(failingStream())))).resolves.toBeUndefined();
      expect(backend.size).toBe(0);
      expect(await a.handler.get('fresh', [])).toBeUndefined(); // answers at once: the pending marker is gone
      await a.handler.set('kept', Promise.resolve(entryOf('good value')));
      await a.handler.set('kept', Promise.resolve(entryOf(failingStream('half of a new'))));
      await a.handler.set('kept', Promise.reject(new Error('render threw before any byte')));
      expect(await text(await a.handler.get('kept', []))).toBe('good value');
      expect(await text(await b.handler.get('kept', []))).toBe('good value');
      expect(errors).toEqual([]); // a failed render is not a backend fault
    });

    it('does not store an entry Next treats as dynamic (expire 0) or one already past its expire', async () => {
      const backend = new MemoryBackend();
      const [a] = instances(backend);
      await a.handler.set('dynamic', Promise.resolve(entryOf('x', { expire: 0, revalidate: 0 })));
      await a.handler.set('old', Promise.resolve(entryOf('x', { timestamp: Date.now() - 120_000, expire: 60 })));
      expect(backend.size).toBe(0);
      expect(await a.handler.get('dynamic', [])).toBeUndefined();
    });

    it('maps expire 0xfffffffe (forever) to the longest TTL, and caps every TTL at maxTtlSeconds', async () => {
      const backend = new MemoryBackend();
      const [a] = instances(backend, { maxTtlSeconds: 1_000 });
      const ttlOf = (key: string) => backend.getTtl(useCacheStoreKey(a.rt, key));
      await a.handler.set('forever', Promise.resolve(entryOf('f', { expire: INFINITE_CACHE, revalidate: INFINITE_CACHE })));
      await a.handler.set('infinity', Promise.resolve(entryOf('i', { expire: Infinity })));
      await a.handler.set('long', Promise.resolve(entryOf('l', { expire: 5_000 })));
      await a.handler.set('minute', Promise.resolve(entryOf('m', { expire: 60 })));
      expect(await ttlOf('forever')).toBeGreaterThan(990);
      expect(await ttlOf('forever')).toBeLessThanOrEqual(1_000);
      expect(await ttlOf('infinity')).toBeLessThanOrEqual(1_000);
      expect(await ttlOf('long')).toBeLessThanOrEqual(1_000);
      expect(await ttlOf('minute')).toBeGreaterThan(55);
      expect(await ttlOf('minute')).toBeLessThanOrEqual(60);
      // The entry itself is unchanged: Next reads its own expire back.
      expect((await a.handler.get('forever', []))!.expire).toBe(INFINITE_CACHE);
    });

    it('treats a negative expire (Next dev eviction sentinel) as a miss', async () => {
      const [a] = instances(new MemoryBackend());
      await a.handler.set('evicted', Promise.resolve(entryOf('x', { expire: -1 })));
      expect(await a.handler.get('evicted', [])).toBeUndefined();
    });
  });

  describe('keys', () => {
    // React-encoded keys can hold lone UTF-16 surrogates, which UTF-8 cannot carry.
    const keys = [
      '["build-1","fn",[{"s":"\uD800"}]]',
      '["build-1","fn",[{"s":"\uDC00"}]]',
      '["build-1","fn",[{"s":"\uFFFD"}]]',
      '["build-1","fn",[{"s":"\uD83D\uDE00"}]]',
    ];

    it('hashes the UTF-16 code units: keys differing only in a lone surrogate stay apart (Memory)', async () => {
      const [a, b] = instances(new MemoryBackend());
      for (const [i, key] of keys.entries()) await a.handler.set(key, Promise.resolve(entryOf(`value-${i}`)));
      for (const [i, key] of keys.entries()) expect(await text(await b.handler.get(key, []))).toBe(`value-${i}`);
      expect(new Set(keys.map((key) => useCacheStoreKey(a.rt, key))).size).toBe(keys.length);
      expect(useCacheStoreKey(a.rt, keys[0]!)).toMatch(/^cachekit:test-app:u:[0-9a-f]{64}$/);
    });

    it('keeps them apart on a backend that sends keys as UTF-8 and hashes them (memcached-like), where raw keys collide', async () => {
      const backend = new Utf8KeyedBackend();
      expect(Utf8KeyedBackend.keyOf(keys[0]!)).toBe(Utf8KeyedBackend.keyOf(keys[1]!)); // the hazard, raw
      const [a, b] = instances(backend, { readYourWrites: false }); // counts entries only, no epoch keys
      for (const [i, key] of keys.entries()) await a.handler.set(key, Promise.resolve(entryOf(`value-${i}`)));
      expect(backend.size).toBe(keys.length);
      for (const [i, key] of keys.entries()) expect(await text(await b.handler.get(key, []))).toBe(`value-${i}`);
    });

    it('stays within every backend key limit, however long the key', async () => {
      const [a] = instances(new MemoryBackend());
      const key = 'x'.repeat(100_000);
      expect(useCacheStoreKey(a.rt, key).length).toBeLessThan(100);
      await a.handler.set(key, Promise.resolve(entryOf('long key')));
      expect(await text(await a.handler.get(key, []))).toBe('long key');
    });
  });

  describe('tags', () => {
    it('updateTags without durations expires tagged entries on every instance; a later set is fresh', async () => {
      const [a, b] = instances(new MemoryBackend());
      await a.handler.set('tagged', Promise.resolve(entryOf('v1', { tags: ['posts'] })));
      await a.handler.set('untagged', Promise.resolve(entryOf('u', { tags: ['other'] })));
      expect(await text(await b.handler.get('tagged', []))).toBe('v1'); // now in B's L1
      await sleep(2);
      await a.handler.updateTags(['posts']);
      b.rt.tags.invalidateLocal(['posts']); // what the invalidation message does (tested with Redis below)
      expect(await a.handler.get('tagged', [])).toBeUndefined();
      expect(await b.handler.get('tagged', [])).toBeUndefined();
      expect(await text(await b.handler.get('untagged', []))).toBe('u');
      await sleep(2);
      await b.handler.set('tagged', Promise.resolve(entryOf('v2', { tags: ['posts'] })));
      expect(await text(await a.handler.get('tagged', []))).toBe('v2');
    });

    it('updateTags with durations serves the entry with revalidate -1 until expire, then misses', async () => {
      const [a, b] = instances(new MemoryBackend());
      await a.handler.set('swr', Promise.resolve(entryOf('old', { tags: ['posts'], revalidate: 900 })));
      await sleep(2);
      await a.handler.updateTags(['posts'], { expire: 1 });
      const stale = await b.handler.get('swr', []);
      expect(stale!.revalidate).toBe(-1);
      expect(await text(stale)).toBe('old');
      expect(await b.handler.getExpiration(['posts'])).toBe(0); // not expired yet
      await sleep(1_100);
      b.rt.tags.invalidateLocal(['posts']);
      expect(await b.handler.get('swr', [])).toBeUndefined();
      expect(await b.handler.getExpiration(['posts'])).toBeGreaterThan(0);
      // The regenerated entry is fresh again.
      await sleep(2);
      await b.handler.set('swr', Promise.resolve(entryOf('new', { tags: ['posts'] })));
      expect((await a.handler.get('swr', []))!.revalidate).toBe(900);
    });

    it('soft tags (revalidatePath): getExpiration reports the event, get checks them too', async () => {
      const [a, b] = instances(new MemoryBackend());
      const softTags = ['_N_T_/layout', '_N_T_/blog/layout', '_N_T_/blog'];
      await a.handler.set('page-data', Promise.resolve(entryOf('x', { tags: [] })));
      expect(await b.handler.getExpiration(softTags)).toBe(0);
      await sleep(2);
      const before = Date.now();
      await a.handler.updateTags(['_N_T_/blog']);
      b.rt.tags.invalidateLocal(['_N_T_/blog']);
      const expiration = await b.handler.getExpiration(softTags);
      expect(expiration).toBeGreaterThanOrEqual(before);
      const entry = await b.handler.get('page-data', []); // without soft tags: Next discards it by getExpiration
      expect(entry!.timestamp).toBeLessThanOrEqual(expiration);
      expect(await b.handler.get('page-data', softTags)).toBeUndefined();
      // A stale soft tag (revalidateTag(softTag, profile)) makes the entry stale, not missing.
      await a.handler.set('page-data-2', Promise.resolve(entryOf('y', { tags: [] })));
      await sleep(2);
      await a.handler.updateTags(['_N_T_/blog/layout'], { expire: 3600 });
      expect((await a.handler.get('page-data-2', softTags.slice(0, 2)))!.revalidate).toBe(-1);
    });

    it('reads tag state in one batch, then locally; refreshTags makes no round trip', async () => {
      const backend = new CountingBackend();
      const [a] = instances(backend);
      const tags = ['_N_T_/layout', '_N_T_/a/layout', '_N_T_/a/b/layout', '_N_T_/a/b/page', '_N_T_/a/b'];
      await a.handler.refreshTags();
      expect(backend.gets + backend.batches).toBe(0);
      expect(await a.handler.getExpiration(tags)).toBe(0);
      expect(backend.batches).toBe(1);
      expect(await a.handler.getExpiration(tags)).toBe(0);
      await a.handler.set('k', Promise.resolve(entryOf('v', { tags: ['x'] })));
      await a.handler.get('k', tags);
      expect(backend.batches).toBe(2); // the one new tag ('x'), the soft tags from the local state
      expect(backend.gets).toBe(0); // the entry came from the L1
    });

    it("accepts Next 15.5's variadic getExpiration(...tags) and expireTags(...tags)", async () => {
      const [a] = instances(new MemoryBackend());
      await a.handler.set('k1', Promise.resolve(entryOf('v', { tags: ['t1'] })));
      await a.handler.set('k2', Promise.resolve(entryOf('v', { tags: ['t2'] })));
      await sleep(2);
      const before = Date.now();
      await a.handler.expireTags('t1', 't2');
      expect(await a.handler.get('k1', [])).toBeUndefined();
      expect(await a.handler.get('k2', [])).toBeUndefined();
      expect(await a.handler.getExpiration('t1', 'unrelated')).toBeGreaterThanOrEqual(before);
      expect(await a.handler.getExpiration('t2')).toBeGreaterThanOrEqual(before);
      expect(await a.handler.getExpiration()).toBe(0);
    });

    it('one tag store for both interfaces: either call invalidates legacy and use-cache entries alike', async () => {
      const backend = new MemoryBackend();
      const [a, b] = instances(backend);
      const pageCtx: GetContext = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false };
      const fetchCtx: GetContext = { kind: 'FETCH', revalidate: 60, tags: ['posts'], softTags: [] };
      const fill = async () => {
        await a.legacy().set('/blog', appPage(), { cacheControl: { revalidate: 60, expire: 3600 } }); // tagged 'posts' in its header
        await a.legacy().set('fetch-1', fetchValue(), { fetchCache: true, tags: ['posts'] });
        await a.handler.set('uc', Promise.resolve(entryOf('uc', { tags: ['posts'] })));
        await sleep(2);
      };

      await fill();
      await a.legacy().revalidateTag('posts'); // legacy call
      b.rt.tags.invalidateLocal(['posts']);
      expect(await b.handler.get('uc', [])).toBeUndefined();
      expect(await b.legacy().get('/blog', pageCtx)).toBeNull();

      await fill();
      await b.handler.updateTags(['posts']); // 'use cache' call, on the other instance
      a.rt.tags.invalidateLocal(['posts']);
      expect(await a.legacy().get('/blog', pageCtx)).toBeNull();
      expect(await a.legacy().get('fetch-1', fetchCtx)).toBeNull();
      expect(await a.handler.get('uc', [])).toBeUndefined();

      await fill();
      await b.handler.updateTags(['posts'], { expire: 3600 }); // stale, through either interface
      a.rt.tags.invalidateLocal(['posts']);
      expect((await a.handler.get('uc', []))!.revalidate).toBe(-1);
      const page = await a.legacy().get('/blog', pageCtx);
      expect(page!.lastModified + 60_000).toBeLessThan(Date.now()); // backdated: Next serves it STALE
      // The very same tag keys: one stale and one expired key for 'posts', nothing else.
      expect(await backend.get('cachekit:{test-app.tags}:s:posts')).not.toBeNull();
      expect(await backend.get('cachekit:{test-app.tags}:e:posts')).not.toBeNull();
    });
  });

  describe('failures', () => {
    const broken = (): Backend => {
      const fail = async (): Promise<never> => {
        throw new BackendError('connection refused', { kind: 'transient', backend: 'broken' });
      };
      return { get: fail, set: fail, delete: fail, exists: fail, healthCheck: fail };
    };

    it('never throws into a render: misses, dropped writes, local-only tag events, all reported', async () => {
      const errors: BackendError[] = [];
      const operations: string[] = [];
      const [a] = instances(broken(), {
        onError: (e, context) => {
          errors.push(e);
          operations.push(context.operation);
        },
        breaker: false,
      });
      await expect(a.handler.set('k', Promise.resolve(entryOf('v')))).resolves.toBeUndefined();
      await expect(a.handler.get('absent', ['_N_T_/x'])).resolves.toBeUndefined();
      await expect(a.handler.updateTags(['posts'])).resolves.toBeUndefined();
      await expect(a.handler.getExpiration(['a', 'b'])).resolves.toBeTypeOf('number');
      await expect(a.handler.refreshTags()).resolves.toBeUndefined();
      expect(errors.length).toBeGreaterThanOrEqual(3);
      expect(errors.every((e) => e instanceof BackendError)).toBe(true);
      expect(operations).toEqual(expect.arrayContaining(['set', 'get', 'getTags', 'revalidateTag']));
    });

    it('answers within the deadline when the backend hangs', async () => {
      const hang = (): Promise<never> => new Promise(() => {});
      const backend: Backend = { get: hang, set: hang, delete: hang, exists: hang, healthCheck: hang };
      const [a] = instances(backend, { timeoutMs: 100, onError: () => {} });
      const started = Date.now();
      expect(await a.handler.get('k', ['_N_T_/p'])).toBeUndefined();
      await a.handler.set('k', Promise.resolve(entryOf('v')));
      await a.handler.updateTags(['posts']);
      expect(await a.handler.getExpiration(['_N_T_/q'])).toBe(0);
      expect(Date.now() - started).toBeLessThan(2_000);
    });

    it('treats foreign or corrupt bytes under its key as a miss', async () => {
      const backend = new MemoryBackend();
      const operations: string[] = [];
      const [a] = instances(backend, { onError: (_e, context) => operations.push(context.operation) });
      await backend.set(useCacheStoreKey(a.rt, 'k'), encoder.encode('not an entry'));
      expect(await a.handler.get('k', [])).toBeUndefined();
      const good = useCacheEntrySerializer().encode({ value: new Uint8Array(3), tags: [], stale: 1, timestamp: 1, expire: 1, revalidate: 1 });
      await backend.set(useCacheStoreKey(a.rt, 'k2'), good.subarray(0, good.byteLength - 2));
      expect(await a.handler.get('k2', [])).toBeUndefined();
      expect(operations).toEqual(['decode', 'decode']);
    });
  });

  describe('async context', () => {
    it('the check sees a retained stream (so the tests below can fail on this Node)', async () => {
      const retained: unknown[] = [];
      const ref = await inRequest(async () => {
        retained.push(streamOf('kept'));
      });
      expect(await collected(ref)).toBe(Number(process.versions.node.split('.')[0]) >= 24);
      retained.length = 0;
    });

    it('does not retain the request that filled an entry, or the one that read it', async () => {
      const [a] = instances(new MemoryBackend());
      const filled = await inRequest(() => a.handler.set('k', Promise.resolve(entryOf('cached value'))));
      expect(await collected(filled)).toBe(true);
      let value = '';
      const read = await inRequest(async () => {
        value = await text(await a.handler.get('k', ['_N_T_/page']));
        await a.handler.getExpiration(['_N_T_/page']);
        await a.handler.refreshTags();
      });
      expect(value).toBe('cached value');
      expect(await collected(read)).toBe(true);
    });

    it('does not retain the request of a pending set raced by a get, of a failed stream, or of a tag event', async () => {
      const [a] = instances(new MemoryBackend());
      const raced = await inRequest(async () => {
        let resolveEntry!: (entry: UseCacheEntry) => void;
        const setting = a.handler.set('k', new Promise((resolve) => (resolveEntry = resolve)));
        const reading = a.handler.get('k', []);
        resolveEntry(entryOf('v'));
        await Promise.all([setting, reading]);
      });
      const failed = await inRequest(() => a.handler.set('f', Promise.resolve(entryOf(failingStream()))));
      const updated = await inRequest(() => a.handler.updateTags(['posts'], { expire: 10 }));
      expect(await collected(raced)).toBe(true);
      expect(await collected(failed)).toBe(true);
      expect(await collected(updated)).toBe(true);
      expect(await text(await a.handler.get('k', []))).toBe('v');
    });

    it('does not retain the request in which the handler was first used (stack and entry cache created lazily)', async () => {
      const handler = createUseCacheHandler({ backend: new MemoryBackend(), namespace: 'lazy' });
      const first = await inRequest(async () => {
        await handler.refreshTags();
        await handler.set('k', Promise.resolve(entryOf('v')));
      });
      expect(await collected(first)).toBe(true);
      expect(await text(await handler.get('k', []))).toBe('v');
    });
  });
});

describe("'use cache' handler on Redis: two instances, tag events and L1 invalidation by pub/sub", () => {
  let redis: Awaited<ReturnType<typeof startRedis>>;
  let namespaceSeq = 0;

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  /** Two instances, each with its own RedisBackend, subscribed before the test starts. */
  async function redisInstances(options: CachekitNextOptions = {}) {
    const namespace = `redis-app-${++namespaceSeq}`;
    const pair = instances(
      () => {
        const backend = new RedisBackend({ url: redis.url });
        closables.push(backend);
        return backend;
      },
      { namespace, ...options },
    );
    expect(await Promise.all(pair.map((i) => i.rt.ready))).toEqual([true, true]);
    return pair;
  }

  /** Waits until `rt` has received `count` more invalidation messages. */
  async function received(rt: CacheStack, before: number, count = 1): Promise<void> {
    const deadline = Date.now() + 5_000;
    while (rt.bus.received < before + count) {
      if (Date.now() > deadline) throw new Error(`no invalidation message within 5 s (received ${rt.bus.received - before})`);
      await sleep(5);
    }
  }

  it('shares entries and drops L1 copies on every instance when one writes', async () => {
    const [a, b] = await redisInstances();
    let before = b.rt.bus.received;
    await a.handler.set('k', Promise.resolve(entryOf('v1')));
    await received(b.rt, before); // (a read racing this announcement would not keep its value in L1)
    expect(await text(await b.handler.get('k', []))).toBe('v1');
    expect(b.rt.useCacheEntries.hasLocal(useCacheStoreKey(b.rt, 'k'))).toBe(true);
    before = b.rt.bus.received;
    await a.handler.set('k', Promise.resolve(entryOf('v2')));
    await received(b.rt, before);
    expect(b.rt.useCacheEntries.hasLocal(useCacheStoreKey(b.rt, 'k'))).toBe(false);
    expect(await text(await b.handler.get('k', []))).toBe('v2');
  });

  it('a tag event on one instance reaches the other without waiting for any local TTL', async () => {
    const [a, b] = await redisInstances();
    await a.handler.set('k', Promise.resolve(entryOf('v1', { tags: ['posts'] })));
    expect((await b.handler.get('k', []))!.revalidate).toBe(900); // B has the entry and the tag state locally
    expect(await b.handler.getExpiration(['posts'])).toBe(0);
    await sleep(2);

    let before = b.rt.bus.received;
    await a.handler.updateTags(['posts'], { expire: 3600 });
    await received(b.rt, before);
    expect((await b.handler.get('k', []))!.revalidate).toBe(-1);

    before = b.rt.bus.received;
    await a.handler.updateTags(['posts']);
    await received(b.rt, before);
    expect(await b.handler.get('k', [])).toBeUndefined();
    expect(await b.handler.getExpiration(['posts'])).toBeGreaterThan(0);

    // A legacy revalidateTag is the same event for 'use cache' entries.
    await sleep(2);
    await b.handler.set('k', Promise.resolve(entryOf('v2', { tags: ['posts'] })));
    expect(await text(await a.handler.get('k', []))).toBe('v2');
    await sleep(2);
    before = a.rt.bus.received;
    await b.legacy().revalidateTag(['posts']);
    await received(a.rt, before);
    expect(await a.handler.get('k', [])).toBeUndefined();
  });

  it('does not retain the request in which the first handler call opened the Redis connections', async () => {
    // A fresh connection set: the earlier tests' backends are closed, so this one connects now, inside the "request".
    const backend = new RedisBackend({ url: redis.url, keyPrefix: 'gc:' });
    closables.push(backend);
    const handler = createUseCacheHandler({ backend, namespace: 'gc' });
    const first = await inRequest(async () => {
      await handler.set('k', Promise.resolve(entryOf('v')));
      expect(await text(await handler.get('k', []))).toBe('v');
    });
    expect(await handler.stack().ready).toBe(true); // subscribed: both connections are open
    expect(await collected(first)).toBe(true);
  });

  it('keeps keys differing only in a lone surrogate apart on Redis (UTF-8 on the wire)', async () => {
    const [a, b] = await redisInstances();
    const keys = ['k\uD800', 'k\uDC00', 'k\uFFFD'];
    for (const [i, key] of keys.entries()) await a.handler.set(key, Promise.resolve(entryOf(`value-${i}`)));
    for (const [i, key] of keys.entries()) expect(await text(await b.handler.get(key, []))).toBe(`value-${i}`);
  });
});

// Keeps the type import honest: our handler type is assignable to Next's.
// biome-ignore lint/suspicious/noExportsInTest: exported so TypeScript checks it (an unused local type is not)
export type _Assignable = UseCacheHandler extends NextCacheHandler ? true : never;
