/**
 * One regeneration per stale entry across the fleet (store/regeneration.ts): of the instances that read an entry
 * once it is stale, exactly one is told so (Next regenerates it there); the others get it as fresh until the new
 * entry arrives or the lease ends. Next's own handlers cannot do this: each process regenerates on its own (Next
 * dedupes inside one process only), so with N instances a stale page is rendered N times.
 *
 * What "told stale" means is Next's rule: a legacy entry is stale when `lastModified + revalidate * 1000` is past
 * (incremental-cache), a 'use cache' entry when `timestamp + revalidate * 1000` is past or `revalidate` is -1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemcachedBackend } from '../../src/backends/memcached.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { RedisBackend } from '../../src/backends/redis.js';
import { handlerClassFor } from '../../src/next/cache-handler.js';
import { useCacheHandlerFor, type UseCacheEntry } from '../../src/next/use-cache-handler.js';
import type { Backend } from '../../src/protocol/backend.js';
import { CacheStack, type CachekitNextOptions } from '../../src/stack/stack.js';
import type { CacheHandlerValue, GetContext } from '../../src/wire/next-types.js';
import { startMemcached, startRedis, type ServerHandle } from '../support/servers.js';
import { appPage, fetchValue } from './fixtures.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pageCtx: GetContext = { kind: 'APP_PAGE' };
/** Revalidate after 1 s, as `export const revalidate = 1`. */
const cacheControl = { revalidate: 1, expire: 3600 };

let redis: ServerHandle & { url: string };
let memcached: ServerHandle;
const stacks: CacheStack[] = [];
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  [redis, memcached] = await Promise.all([startRedis(), startMemcached()]);
});

afterAll(async () => {
  await Promise.all(stacks.map((s) => s.close()));
  await Promise.all(closers.map((close) => close()));
  await Promise.all([redis.stop(), memcached.stop()]);
});

/** A RedisBackend whose PUBLISH can be held back: its announcements reach the other instances late. */
class HeldPublish extends RedisBackend {
  #gate: Promise<void> = Promise.resolve();
  #open: () => void = () => {};
  hold(): void {
    this.#gate = new Promise((resolve) => (this.#open = resolve));
  }
  open(): void {
    this.#open();
  }
  override async publish(channel: string, message: string): Promise<void> {
    await this.#gate;
    await super.publish(channel, message);
  }
}

type Make = () => Backend;
const redisBackend: Make = () => {
  const backend = new RedisBackend({ url: redis.url, commandTimeoutMs: 500, connectTimeoutMs: 500 });
  closers.push(() => backend.close());
  return backend;
};
const memcachedBackend: Make = () => {
  const backend = new MemcachedBackend({ servers: [`127.0.0.1:${memcached.port}`] });
  closers.push(() => backend.close());
  return backend;
};

/** `count` instances of one app over one store, each with its own connection, L1 and lease bookkeeping. */
async function fleet(make: Make, namespace: string, count: number, options: CachekitNextOptions = {}) {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const stack = new CacheStack({ backend: make(), namespace, deploymentId: 'd1', ...options });
      stacks.push(stack);
      await stack.ready;
      const Handler = handlerClassFor(() => stack);
      return { stack, handler: () => new Handler({}), useCache: useCacheHandlerFor(() => stack) };
    }),
  );
}

/** Next's staleness rule for a legacy entry. */
const staleToNext = (value: CacheHandlerValue | null, revalidate = cacheControl.revalidate) =>
  value !== null && Date.now() > value.lastModified + revalidate * 1000;

async function setPage(instance: Awaited<ReturnType<typeof fleet>>[number], path: string) {
  await instance.handler().set(path, appPage('v1'), { cacheControl });
}

describe('one regeneration per stale entry across the fleet', () => {
  it('Redis, ISR page past its revalidate: of 4 instances x 10 concurrent reads, exactly one is stale to Next', async () => {
    const instances = await fleet(redisBackend, 'regen1', 4);
    await setPage(instances[0]!, '/p');
    const before = await instances[1]!.handler().get('/p', pageCtx);
    expect(staleToNext(before)).toBe(false);
    await sleep(1_100);
    const reads = await Promise.all(instances.flatMap((i) => Array.from({ length: 10 }, () => i.handler().get('/p', pageCtx))));
    expect(reads.every((r) => r !== null)).toBe(true);
    expect(reads.filter((r) => staleToNext(r)).length).toBe(1);
    // The stale one carries the stored lastModified, so Next regenerates it; the others look fresh.
    expect(reads.find((r) => staleToNext(r))!.lastModified).toBe(before!.lastModified);
  });

  it('the holder writing the new entry ends its lease: the next staleness elects one instance again', async () => {
    const instances = await fleet(redisBackend, 'regen2', 2);
    await setPage(instances[0]!, '/p');
    await sleep(1_100);
    const first = await Promise.all(instances.map((i) => i.handler().get('/p', pageCtx)));
    const holder = first.findIndex((r) => staleToNext(r));
    expect(holder).toBeGreaterThanOrEqual(0);
    expect(first.filter((r) => staleToNext(r)).length).toBe(1);
    // The holder regenerates (Next calls set), which releases the lease; the new entry is stale again after 1 s.
    await setPage(instances[holder]!, '/p');
    await sleep(1_100);
    const second = await Promise.all(instances.map((i) => i.handler().get('/p', pageCtx)));
    expect(second.filter((r) => staleToNext(r)).length).toBe(1);
  });

  it('the holder writing the new entry does not free the old version for an instance that has not heard of it yet', async () => {
    // CI failure (e2e/fleet-regeneration, 4 instances): the holder stored the new rendering and released its lease;
    // an instance whose L1 still held the old version (the new one's announcement not yet handled there) asked again
    // for that version's lease, got it, and rendered the page a second time. The lease now lapses instead.
    const held = new HeldPublish({ url: redis.url, commandTimeoutMs: 500, connectTimeoutMs: 500 });
    closers.push(() => held.close());
    const [a] = await fleet(() => held, 'regen14', 1);
    const [b] = await fleet(redisBackend, 'regen14', 1);
    await setPage(a!, '/p');
    await sleep(50); // A's announcement passes B before B caches the entry
    expect(staleToNext(await b!.handler().get('/p', pageCtx))).toBe(false); // B's L1 holds it
    await sleep(1_100);
    expect(staleToNext(await a!.handler().get('/p', pageCtx))).toBe(true); // A holds the lease: it regenerates
    expect(staleToNext(await b!.handler().get('/p', pageCtx))).toBe(false); // refused: B serves it as fresh
    await sleep(300); // B's memo of the refusal lapses: its next read asks the store again
    held.hold();
    await setPage(a!, '/p'); // the new rendering is stored; its announcement is held back
    expect(b!.stack.entries.hasLocal('cachekit:regen14:d1:r:/p')).toBe(true); // B still holds the old version
    const onB = await b!.handler().get('/p', pageCtx);
    expect(staleToNext(onB)).toBe(false);
    held.open();
  });

  it('a lease whose holder never writes lapses: another instance takes over after regenerationLeaseMs', async () => {
    const instances = await fleet(redisBackend, 'regen3', 2, { regenerationLeaseMs: 300 });
    await setPage(instances[0]!, '/p');
    await sleep(1_100);
    const a = await instances[0]!.handler().get('/p', pageCtx);
    const b = await instances[1]!.handler().get('/p', pageCtx);
    expect([staleToNext(a), staleToNext(b)]).toEqual([true, false]);
    await sleep(400); // A crashed mid-render: its lease lapses
    expect(staleToNext(await instances[1]!.handler().get('/p', pageCtx))).toBe(true);
  });

  it("revalidateTag(t, 'max') marks stale: one instance gets it backdated, the others as fresh", async () => {
    const instances = await fleet(redisBackend, 'regen4', 3);
    await instances[0]!.handler().set('/p', appPage('posts'), { cacheControl: { revalidate: 3600, expire: 86_400 } });
    await instances[0]!.handler().revalidateTag('posts', { expire: 3600 });
    const reads = await Promise.all(instances.map((i) => i.handler().get('/p', pageCtx)));
    expect(reads.filter((r) => staleToNext(r, typeof r?.cacheControl?.revalidate === 'number' ? r.cacheControl.revalidate : 3600)).length).toBe(1);
  });

  it("'use cache' entries: one instance sees the entry past its revalidate, the others see it fresh", async () => {
    const instances = await fleet(redisBackend, 'regen5', 3);
    const entry = (): UseCacheEntry => ({
      value: new ReadableStream({
        start(c) {
          c.enqueue(new Uint8Array([1, 2, 3]));
          c.close();
        },
      }),
      tags: ['t'],
      stale: 0,
      timestamp: Date.now(),
      expire: 3600,
      revalidate: 1,
    });
    await instances[0]!.useCache.set('k', Promise.resolve(entry()));
    await sleep(1_100);
    const reads = await Promise.all(instances.flatMap((i) => [i.useCache.get('k', []), i.useCache.get('k', [])]));
    expect(reads.every((r) => r !== undefined)).toBe(true);
    const now = Date.now();
    expect(reads.filter((r) => r!.revalidate < 0 || now > r!.timestamp + r!.revalidate * 1000).length).toBe(1);
  });

  it('without locks (Memcached) or with regenerationLeaseMs: 0 every instance regenerates, as with Next alone', async () => {
    for (const [name, make, options] of [
      ['memcached', memcachedBackend, {}],
      ['redis, lease off', redisBackend, { regenerationLeaseMs: 0 }],
    ] as const) {
      const instances = await fleet(make, `regen6-${name.replace(/\W/g, '')}`, 3, options);
      expect(instances[0]!.stack.leases.active, name).toBe(false);
      await setPage(instances[0]!, '/p');
      await sleep(1_100);
      const reads = await Promise.all(instances.map((i) => i.handler().get('/p', pageCtx)));
      expect(reads.filter((r) => staleToNext(r)).length, name).toBe(3);
    }
  });

  it('a lock call that fails is reported and every instance regenerates (a lease only saves work)', async () => {
    const shared = new MemoryBackend();
    const errors: string[] = [];
    // One store, whose lock calls fail (the rest of the backend works).
    const broken: Make = () =>
      new Proxy(shared, {
        get(target, property) {
          if (property === 'acquireLock') return () => Promise.reject(new Error('lock service down'));
          const value = Reflect.get(target, property, target) as unknown;
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      });
    const instances = await fleet(broken, 'regen7', 2, { onError: (error, context) => errors.push(`${context.operation}: ${error.message}`) });
    await setPage(instances[0]!, '/p');
    await sleep(1_100);
    const reads = await Promise.all(instances.map((i) => i.handler().get('/p', pageCtx)));
    expect(reads.filter((r) => staleToNext(r)).length).toBe(2);
    expect(errors.some((e) => e.startsWith('acquireLock'))).toBe(true);
  });

  it('hard revalidateTag: of 4 instances x 5 concurrent reads one misses (it renders), the others wait for its new entry', async () => {
    const instances = await fleet(redisBackend, 'regen9', 4);
    await instances[0]!.handler().set('/p', appPage('posts'), { cacheControl: { revalidate: 3600, expire: 86_400 } });
    await instances[0]!.handler().revalidateTag('posts'); // Next's default: expired now
    const revalidatedAt = Date.now();
    let rendered: number | undefined;
    const reads = instances.flatMap((instance) =>
      Array.from({ length: 5 }, () =>
        instance
          .handler()
          .get('/p', pageCtx)
          .then(async (value) => {
            if (value === null && rendered === undefined) {
              // This one renders, as Next does on a miss, and stores the result.
              await sleep(150);
              rendered = Date.now();
              await instance.handler().set('/p', appPage('posts'), { cacheControl: { revalidate: 3600, expire: 86_400 } });
            }
            return value;
          }),
      ),
    );
    const values = await Promise.all(reads);
    expect(values.filter((v) => v === null).length).toBe(1);
    // Every other read answered the new entry, none the expired one.
    for (const value of values.filter((v) => v !== null)) expect(value!.lastModified).toBeGreaterThanOrEqual(revalidatedAt);
    expect(rendered).toBeDefined();
  });

  it('hard revalidateTag: a holder that never stores lets the others render after regenerationWaitMs; 0 waits not at all', async () => {
    const [a, b] = await fleet(redisBackend, 'regen10', 2, { regenerationWaitMs: 300 });
    await a!.handler().set('/p', appPage('posts'), { cacheControl: { revalidate: 3600, expire: 86_400 } });
    await a!.handler().revalidateTag('posts');
    expect(await a!.handler().get('/p', pageCtx)).toBeNull(); // A takes the lease and (would) render
    const started = Date.now();
    expect(await b!.handler().get('/p', pageCtx)).toBeNull(); // A never stored: B renders after waiting
    expect(Date.now() - started).toBeGreaterThanOrEqual(280);

    const [c, d] = await fleet(redisBackend, 'regen11', 2, { regenerationWaitMs: 0 });
    await c!.handler().set('/p', appPage('posts'), { cacheControl: { revalidate: 3600, expire: 86_400 } });
    await c!.handler().revalidateTag('posts');
    expect(await Promise.all([c!.handler().get('/p', pageCtx), d!.handler().get('/p', pageCtx)])).toEqual([null, null]);
    expect(d!.stack.leases.waitMs).toBe(0); // neither waited: each renders at once
    expect(() => new CacheStack({ backend: new MemoryBackend(), regenerationWaitMs: -1 })).toThrow(/regenerationWaitMs/);
  });

  it('a lease taken for an expired entry does not outlive it: a newer entry stored elsewhere that goes stale is regenerated', async () => {
    const [a, b] = await fleet(redisBackend, 'regen13', 2, { regenerationWaitMs: 100 });
    await a!.handler().set('/p', appPage('posts'), { cacheControl: { revalidate: 3600, expire: 86_400 } });
    await a!.handler().revalidateTag('posts');
    expect(await a!.handler().get('/p', pageCtx)).toBeNull(); // A takes the lease (and, say, its render fails)
    expect(await b!.handler().get('/p', pageCtx)).toBeNull(); // B waited in vain, renders and stores
    await sleep(5);
    await b!.handler().set('/p', appPage('posts'), { cacheControl: { revalidate: 3600, expire: 86_400 } });
    await b!.handler().revalidateTag('posts', { expire: 3600 }); // B's entry is marked stale
    // A still holds the lease it took for the old entry: this newer one is A's to regenerate, told stale to Next.
    const onA = await a!.handler().get('/p', pageCtx);
    expect(onA).not.toBeNull();
    expect(staleToNext(onA, 3600)).toBe(true);
  });

  it("hard updateTags on 'use cache' entries: one instance misses, the others get the entry it stores", async () => {
    const instances = await fleet(redisBackend, 'regen12', 3);
    const entry = (byte: number): UseCacheEntry => ({
      value: new ReadableStream({
        start(c) {
          c.enqueue(new Uint8Array([byte]));
          c.close();
        },
      }),
      tags: ['t'],
      stale: 0,
      timestamp: Date.now(),
      expire: 3600,
      revalidate: 3600,
    });
    await instances[0]!.useCache.set('k', Promise.resolve(entry(1)));
    await instances[0]!.useCache.updateTags(['t']);
    let stored = false;
    const reads = await Promise.all(
      instances.map((instance) =>
        instance.useCache.get('k', []).then(async (got) => {
          if (got === undefined && !stored) {
            stored = true;
            await sleep(100);
            await instance.useCache.set('k', Promise.resolve(entry(2)));
          }
          return got;
        }),
      ),
    );
    expect(reads.filter((r) => r === undefined).length).toBe(1);
    for (const got of reads.filter((r) => r !== undefined)) {
      const bytes = new Uint8Array(await new Response(got!.value).arrayBuffer());
      expect([...bytes]).toEqual([2]);
    }
  });

  it('fetch entries follow the revalidate Next passes with the read', async () => {
    const instances = await fleet(redisBackend, 'regen8', 2);
    const ctx: GetContext = { kind: 'FETCH', revalidate: 1, fetchUrl: 'https://api.example/x', tags: [] };
    await instances[0]!.handler().set('f1', fetchValue(), { fetchCache: true, revalidate: 1 });
    await sleep(1_100);
    const reads = await Promise.all(instances.map((i) => i.handler().get('f1', ctx)));
    expect(reads.filter((r) => staleToNext(r, 1)).length).toBe(1);
  });
});
