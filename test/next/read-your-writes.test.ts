/**
 * Read-your-own-writes across instances on backends without invalidation messages: a change made on instance A
 * (hard revalidateTag, updateTag, a stale-marking revalidateTag, a write, cache(fn) invalidate) is seen by the next
 * request on instance B at once, through the invalidation epoch, while B holds the old value in its L1 and the old
 * tag state locally. Two stacks = two instances, on real memcached servers, a real directory and the CachekitIO fake.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CachekitIOBackend } from '../../src/backends/cachekitio.js';
import { FileBackend } from '../../src/backends/file.js';
import { MemcachedBackend } from '../../src/backends/memcached.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { BackendError, isClosable, type Backend } from '../../src/protocol/backend.js';
import { cache } from '../../src/loaders/cache.js';
import { RING } from '../../src/store/epoch.js';
import { handlerClassFor } from '../../src/next/cache-handler.js';
import { CacheStack, type CachekitNextOptions } from '../../src/stack/stack.js';
import type { GetContext } from '../../src/wire/next-types.js';
import { useCacheHandlerFor, type UseCacheEntry } from '../../src/next/use-cache-handler.js';
import { FakeCachekitIO } from '../support/fake-cachekitio.js';
import { startMemcached } from '../support/servers.js';
import { appPage, fetchValue } from './fixtures.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const stops: (() => Promise<void>)[] = [];
const made: Backend[] = [];
const stacks: CacheStack[] = [];
let fileDir: string;

const factories: Record<string, { counter: boolean; setup: () => Promise<() => Backend> }> = {
  memcached: {
    counter: true,
    setup: async () => {
      const servers = await Promise.all([startMemcached(), startMemcached()]);
      stops.push(() => Promise.all(servers.map((s) => s.stop())).then(() => {}));
      return () => new MemcachedBackend({ servers: servers.map((s) => s.address) });
    },
  },
  file: { counter: true, setup: async () => () => new FileBackend({ cacheDir: fileDir }) },
  cachekitio: {
    counter: false,
    setup: async () => {
      const fake = await FakeCachekitIO.start({ apiKeys: ['ck_live_ryow'] });
      stops.push(() => fake.stop());
      return () => new CachekitIOBackend({ apiKey: 'ck_live_ryow', apiUrl: fake.url, allowCustomHost: true }, {});
    },
  },
};

beforeAll(async () => {
  fileDir = await mkdtemp(path.join(os.tmpdir(), 'ck-ryow-'));
});
afterEach(async () => {
  await Promise.all(stacks.splice(0).map((rt) => rt.close()));
});
afterAll(async () => {
  await Promise.all(made.map((b) => (isClosable(b) ? b.close() : undefined)));
  await Promise.all(stops.map((stop) => stop()));
  await rm(fileDir, { recursive: true, force: true });
});

const cacheControl = { revalidate: 3600, expire: 86_400 };
const fetchCtx = (): GetContext => ({ kind: 'FETCH', revalidate: 3600, tags: ['posts'], softTags: ['_N_T_/blog'] });
const page = (version: number) => ({ ...appPage(), html: `<html><body>v${version}</body></html>` });
const htmlOf = (value: unknown) => (value as { html?: string } | null | undefined)?.html;

function entry(id: string, tags: string[]): Promise<UseCacheEntry> {
  const bytes = new TextEncoder().encode(id);
  const value = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
  return Promise.resolve({ value, tags, stale: 60, timestamp: Date.now(), expire: 86_400, revalidate: 3600 });
}

async function text(stream: ReadableStream<Uint8Array> | undefined): Promise<string | undefined> {
  return stream ? new Response(stream).text() : undefined;
}

for (const [name, { counter, setup }] of Object.entries(factories)) {
  describe(`read-your-own-writes across instances on ${name}`, () => {
    let make: () => Backend;
    let n = 0;
    beforeAll(async () => {
      make = await setup();
    });

    /** One instance: its own backend object (connections), stack, L1 and tag cache; `request()` is what Next constructs per request. */
    const instance = (namespace: string, options: CachekitNextOptions = {}, wrap: (backend: Backend) => Backend = (backend) => backend) => {
      const backend = make();
      made.push(backend);
      const rt = new CacheStack({ backend: wrap(backend), namespace, deploymentId: 'd', ...options });
      stacks.push(rt);
      const Legacy = handlerClassFor(() => rt);
      return { rt, request: () => new Legacy({}), useCache: useCacheHandlerFor(() => rt) };
    };
    const pair = (options: CachekitNextOptions = {}) => {
      const namespace = `ryow-${name}-${++n}`;
      return [instance(namespace, options), instance(namespace, options)] as const;
    };

    it('a hard revalidateTag on A: the next request on B misses the fetch / unstable_cache entry and the page', async () => {
      const [a, b] = pair();
      await Promise.all([a.rt.ready, b.rt.ready]);
      await a.request().set('f', fetchValue(), { fetchCache: true, tags: ['posts'] });
      await a.request().set('/blog', page(1), { cacheControl });
      // B holds both in its L1 and the tag's state locally.
      const onB = b.request();
      expect(await onB.get('f', fetchCtx())).not.toBeNull();
      expect(await onB.get('/blog', { kind: 'APP_PAGE' })).not.toBeNull();
      expect(b.rt.entries.hasLocal(`${b.rt.keyPrefix}${b.rt.namespace}:f:f`)).toBe(true);
      await sleep(2); // the event comes after the entries' millisecond (Next's rule)
      await a.request().revalidateTag('posts');
      const next = b.request();
      expect(await next.get('f', fetchCtx())).toBeNull();
      expect(await next.get('/blog', { kind: 'APP_PAGE' })).toBeNull();
    });

    it("updateTag on A: the next request on B misses the 'use cache' entry; revalidateTag(t, 'max') serves it stale", async () => {
      const [a, b] = pair();
      await Promise.all([a.rt.ready, b.rt.ready]);
      await a.useCache.set('k', entry('one', ['items']));
      await b.useCache.refreshTags();
      expect(await text((await b.useCache.get('k'))?.value)).toBe('one');
      await sleep(2);
      await a.useCache.updateTags(['items'], { expire: 3600 }); // revalidateTag('items', 'max')
      b.request(); // Next constructs the legacy handler for the request, then calls refreshTags before 'use cache' reads
      await b.useCache.refreshTags();
      const stale = await b.useCache.get('k');
      expect(stale?.revalidate).toBe(-1); // served once while Next regenerates it
      await a.useCache.updateTags(['items']); // updateTag('items')
      b.request();
      await b.useCache.refreshTags();
      expect(await b.useCache.get('k')).toBeUndefined();
      expect(await b.useCache.getExpiration(['items'])).toBeGreaterThan(0);
    });

    it('a write on A: the next request on B reads the new value, not its L1 copy', async () => {
      const [a, b] = pair();
      await Promise.all([a.rt.ready, b.rt.ready]);
      await a.request().set('/p', page(1), { cacheControl });
      expect(htmlOf((await b.request().get('/p', { kind: 'APP_PAGE' }))?.value)).toContain('v1');
      await a.request().set('/p', page(2), { cacheControl });
      expect(htmlOf((await b.request().get('/p', { kind: 'APP_PAGE' }))?.value)).toContain('v2');
    });

    it('cache(fn): a tag event and invalidate() on A reach the next request on B', async () => {
      const [a, b] = pair();
      await Promise.all([a.rt.ready, b.rt.ready]);
      let calls = 0;
      const load = async (id: number) => ({ id, call: ++calls });
      const options = { name: 'ryowLoader', tags: ['posts'], ttl: 3600 } as const;
      const onA = cache(load, { ...options, stack: a.rt });
      const onB = cache(load, { ...options, stack: b.rt });
      expect(await onA(1)).toEqual({ id: 1, call: 1 });
      b.request();
      expect(await onB.detailed(1)).toMatchObject({ value: { call: 1 }, status: 'l2' });
      expect(await onB.detailed(1)).toMatchObject({ value: { call: 1 }, status: 'l1' });
      await sleep(2);
      await a.rt.revalidateTags(['posts']);
      b.request();
      expect(await onB(1)).toEqual({ id: 1, call: 2 }); // recomputed on B: the tag expired
      expect(await onB.detailed(1)).toMatchObject({ value: { call: 2 }, status: 'l1' });
      await onA.invalidate(1);
      b.request();
      expect(await onB(1)).toEqual({ id: 1, call: 3 });
    });

    it('readYourWrites: false keeps the old bound: B trusts its L1 copy for coherenceTtlSeconds', async () => {
      const [a, b] = pair({ readYourWrites: false, coherenceTtlSeconds: 30 });
      expect(b.rt.bus.epoch).toBeNull();
      await a.request().set('/p', page(1), { cacheControl });
      expect(htmlOf((await b.request().get('/p', { kind: 'APP_PAGE' }))?.value)).toContain('v1');
      await a.request().set('/p', page(2), { cacheControl });
      expect(htmlOf((await b.request().get('/p', { kind: 'APP_PAGE' }))?.value)).toContain('v1');
    });

    if (!counter) {
      it('without an atomic counter, a change elsewhere drops all local state at the next request', async () => {
        const [a, b] = pair();
        await Promise.all([a.rt.ready, b.rt.ready]);
        expect(b.rt.bus.epoch?.mode).toBe('token');
        await a.request().set('/x', page(1), { cacheControl });
        await a.request().set('/y', page(1), { cacheControl });
        await b.request().get('/x', { kind: 'APP_PAGE' });
        await b.request().get('/y', { kind: 'APP_PAGE' });
        const flushes = b.rt.bus.epoch!.stats.flushes;
        await a.request().set('/x', page(2), { cacheControl });
        const next = b.request();
        expect(htmlOf((await next.get('/x', { kind: 'APP_PAGE' }))?.value)).toContain('v2');
        expect(b.rt.bus.epoch!.stats.flushes).toBe(flushes + 1);
        expect(b.rt.entries.hasLocal(`${b.rt.keyPrefix}${b.rt.namespace}:d:r:/y`)).toBe(false);
      });
      return;
    }

    it('only what changed is dropped, and one epoch read serves a request (and concurrent ones)', async () => {
      const [a, b] = pair();
      await Promise.all([a.rt.ready, b.rt.ready]);
      expect(b.rt.bus.epoch?.mode).toBe('counter');
      await a.request().set('/x', page(1), { cacheControl });
      await a.request().set('/y', page(1), { cacheControl });
      const warm = b.request();
      await warm.get('/x', { kind: 'APP_PAGE' });
      await warm.get('/y', { kind: 'APP_PAGE' });
      const stats = { ...b.rt.bus.epoch!.stats };
      // The first read, and the one that found the counter A created since: its first entries may not be written yet.
      expect(stats.flushes).toBe(2);
      const l1Hits = b.rt.entries.stats().l1Hits;
      await a.request().set('/x', page(2), { cacheControl });
      const next = b.request();
      expect(htmlOf((await next.get('/x', { kind: 'APP_PAGE' }))?.value)).toContain('v2');
      expect(htmlOf((await next.get('/y', { kind: 'APP_PAGE' }))?.value)).toContain('v1');
      expect(b.rt.entries.stats().l1Hits).toBe(l1Hits + 1); // /y stayed in B's L1
      expect(b.rt.bus.epoch!.stats).toMatchObject({ reads: stats.reads + 1, flushes: stats.flushes, applied: stats.applied + 1 });
      // Five requests begin, then read at once: they share one epoch read.
      const requests = Array.from({ length: 5 }, () => b.request());
      await Promise.all(requests.map((r) => r.get('/y', { kind: 'APP_PAGE' })));
      expect(b.rt.bus.epoch!.stats.reads).toBe(stats.reads + 2);
      expect(b.rt.bus.epoch!.stats.flushes).toBe(stats.flushes);
    });

    it('a journal entry that never appears costs a flush within coherenceTtlSeconds, never a lasting stale copy', async () => {
      const [a, b] = pair({ coherenceTtlSeconds: 0.2 });
      await Promise.all([a.rt.ready, b.rt.ready]);
      await a.request().set('/z', page(1), { cacheControl });
      expect(htmlOf((await b.request().get('/z', { kind: 'APP_PAGE' }))?.value)).toContain('v1');
      await a.request().set('/z', page(2), { cacheControl });
      // The entry is lost (evicted, or its writer died between the counter and the journal write).
      const epochKey = `${a.rt.keyPrefix}${a.rt.namespace}:invalidate:epoch`;
      const slot = Number(new TextDecoder().decode((await a.rt.backend!.get(epochKey))!)) % RING;
      await a.rt.backend!.delete(`${epochKey}:${slot}`);
      await b.request().get('/z', { kind: 'APP_PAGE' }); // may still be the old copy: the entry may yet be written
      await sleep(300);
      await b.request().get('/z', { kind: 'APP_PAGE' });
      expect(htmlOf((await b.request().get('/z', { kind: 'APP_PAGE' }))?.value)).toContain('v2');
    });

    it('a counter that appears with its first journal entry not written yet: no L1 copy outlives that entry', async () => {
      // Two instances start on an empty store; the first write creates the counter. Its writer (A) is still between
      // the counter and its journal write (a busy event loop, a slow server) when a second change is announced and B
      // reads the epoch: B finds the second entry only. The first is pending, not from before the counter existed.
      const namespace = `ryow-${name}-${++n}`;
      const options = { coherenceTtlSeconds: 0.2 };
      let held!: () => void;
      const journalHeld = new Promise<void>((resolve) => (held = resolve));
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      let journalWrites = 0;
      const holdFirstJournalWrite = (backend: Backend): Backend =>
        new Proxy(backend, {
          get(target, property) {
            const value: unknown = Reflect.get(target, property, target);
            if (typeof value !== 'function') return value;
            if (property !== 'set') return value.bind(target);
            return async (key: string, ...rest: unknown[]) => {
              if (/:invalidate:epoch:\d+$/.test(key) && journalWrites++ === 0) {
                held();
                await released;
              }
              return value.call(target, key, ...rest);
            };
          },
        });
      const a = instance(namespace, options, holdFirstJournalWrite);
      const b = instance(namespace, options);
      // Writes the first version without announcing it: the counter does not exist yet.
      const seed = instance(namespace, { readYourWrites: false });
      await Promise.all([a.rt.ready, b.rt.ready]);
      await seed.request().set('/p', page(1), { cacheControl });
      expect(htmlOf((await b.request().get('/p', { kind: 'APP_PAGE' }))?.value)).toContain('v1');
      expect(b.rt.entries.hasLocal(`${b.rt.keyPrefix}${namespace}:d:r:/p`)).toBe(true);

      const write = a.request().set('/p', page(2), { cacheControl }); // stored, counter created, journal write held
      await journalHeld;
      await a.request().set('/q', page(1), { cacheControl }); // the counter's second entry, written at once
      await b.request().get('/p', { kind: 'APP_PAGE' }); // B's first read of the counter since it appeared
      release();
      await write;
      await sleep(300); // past coherenceTtlSeconds: whatever B could not read yet is settled by now
      await b.request().get('/p', { kind: 'APP_PAGE' });
      expect(htmlOf((await b.request().get('/p', { kind: 'APP_PAGE' }))?.value)).toContain('v2');
    });
  });
}

describe('read-your-own-writes when the epoch cannot be read', () => {
  /** The store, with reads of the epoch counter failing while `down` (as when the server holding it is unreachable). */
  class EpochDown extends MemoryBackend {
    down = false;
    override async get(key: string): Promise<Uint8Array | null> {
      if (this.down && key.endsWith(':epoch')) throw new BackendError('unreachable', { kind: 'transient', backend: 'memory', operation: 'get', key });
      return super.get(key);
    }
  }

  it('keeps local state for coherenceTtlSeconds, then drops it; the first read after the outage catches up', async () => {
    const store = new EpochDown();
    const errors: string[] = [];
    const make = () => {
      const rt = new CacheStack({
        backend: store,
        namespace: 'down',
        deploymentId: 'd',
        coherenceTtlSeconds: 0.2,
        onError: (e) => void errors.push(e.message),
      });
      stacks.push(rt);
      const Legacy = handlerClassFor(() => rt);
      return { rt, request: () => new Legacy({}) };
    };
    const [a, b] = [make(), make()];
    await Promise.all([a.rt.ready, b.rt.ready]);
    await a.request().set('/p', page(1), { cacheControl });
    expect(htmlOf((await b.request().get('/p', { kind: 'APP_PAGE' }))?.value)).toContain('v1');
    store.down = true;
    await a.request().set('/p', page(2), { cacheControl }); // announced: the counter's write still works
    expect(htmlOf((await b.request().get('/p', { kind: 'APP_PAGE' }))?.value)).toContain('v1'); // B cannot know yet
    expect(errors.some((m) => m.includes('unreachable'))).toBe(true);
    await sleep(300); // past coherenceTtlSeconds without a successful read: B drops its local state
    expect(htmlOf((await b.request().get('/p', { kind: 'APP_PAGE' }))?.value)).toContain('v2');
    store.down = false;
    await a.request().set('/p', page(3), { cacheControl });
    expect(htmlOf((await b.request().get('/p', { kind: 'APP_PAGE' }))?.value)).toContain('v3');
  });
});
