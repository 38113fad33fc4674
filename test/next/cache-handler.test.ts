import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../src/backends/memory.js';
import { BackendError, type Backend } from '../../src/protocol/backend.js';
import { createCacheHandler, handlerClassFor } from '../../src/next/cache-handler.js';
import { handlerEntrySerializer } from '../../src/wire/next-entry.js';
import { resetStacks, CacheStack, type CachekitNextOptions } from '../../src/stack/stack.js';
import type { FetchValue, GetContext, IncrementalCacheValue } from '../../src/wire/next-types.js';
import { appPage, appRoute, fetchValue, image, pagesPage, postponedPage, redirect } from './fixtures.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Two "instances" (separate stacks, separate L1s) over one backend, as two `next start` processes would be. */
function instances(backend: Backend, options: CachekitNextOptions = {}) {
  const make = () => {
    const rt = new CacheStack({ backend, namespace: 'test-app', deploymentId: 'build-1', ...options });
    const Handler = handlerClassFor(() => rt);
    return { rt, handler: () => new Handler({ serverDistDir: '/nonexistent/.next/server' }) };
  };
  return [make(), make()] as const;
}

const pageCtx: GetContext = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false };
const fetchCtx = (extra: Partial<GetContext> = {}): GetContext => ({
  kind: 'FETCH',
  revalidate: 60,
  fetchUrl: 'https://api.example.com/posts/1',
  fetchIdx: 0,
  tags: ['posts'],
  softTags: ['_N_T_/layout', '_N_T_/blog'],
  ...extra,
});
const cacheControl = { revalidate: 60, expire: 3600 };

afterEach(async () => {
  await resetStacks();
});

describe('entry codec', () => {
  const kinds: [string, IncrementalCacheValue][] = [
    ['APP_PAGE', appPage()],
    ['APP_PAGE postponed', postponedPage()],
    ['APP_ROUTE', appRoute()],
    ['PAGES', pagesPage()],
    ['FETCH', fetchValue()],
    ['FETCH with a non-base64 body', fetchValue('not base64 ✓')],
    ['REDIRECT', redirect()],
    ['IMAGE', image()],
  ];
  for (const [name, value] of kinds) {
    it(`round-trips ${name} exactly (Buffers stay Buffers, Maps stay Maps)`, () => {
      const codec = handlerEntrySerializer();
      const entry = { lastModified: 1764040000000, tags: ['a', 'b'], value, cacheControl };
      const decoded = codec.decode(codec.encode(entry));
      expect(decoded).toEqual(entry);
      if (value.kind === 'APP_PAGE' && value.segmentData) {
        const segments = (decoded.value as typeof value).segmentData!;
        expect(segments).toBeInstanceOf(Map);
        expect(Buffer.isBuffer(segments.get('/_tree'))).toBe(true);
      }
      if (value.kind === 'APP_ROUTE') expect(Buffer.isBuffer((decoded.value as typeof value).body)).toBe(true);
    });
  }

  it('stores binary without base64 inflation and compresses large pages', () => {
    const codec = handlerEntrySerializer();
    const rsc = Buffer.alloc(100_000, 7);
    const value = { ...appPage(), rscData: rsc } as IncrementalCacheValue;
    const encoded = codec.encode({ lastModified: 1, tags: [], value });
    expect(encoded.byteLength).toBeLessThan(rsc.byteLength / 10); // compressible: deflated
    const uncompressed = handlerEntrySerializer({ thresholdBytes: false }).encode({ lastModified: 1, tags: [], value });
    expect(uncompressed.byteLength).toBeLessThan(rsc.byteLength + 1_000); // raw bytes, not base64 (which is 4/3)
  });

  it('compresses with LZ4 by default and with deflate on request; reads both', () => {
    const value = { ...appPage(), rscData: Buffer.alloc(100_000, 7) } as IncrementalCacheValue;
    const entry = { lastModified: 1, tags: [], value };
    const lz4 = handlerEntrySerializer().encode(entry);
    const deflate = handlerEntrySerializer({ algorithm: 'deflate' }).encode(entry);
    expect(lz4[2]).toBe(0x02 | 0x04); // LZ4, checksummed
    expect(deflate[2]).toBe(0x01 | 0x04);
    expect(handlerEntrySerializer().decode(deflate)).toEqual(entry);
    expect(handlerEntrySerializer({ algorithm: 'deflate' }).decode(lz4)).toEqual(entry);
  });

  it('refuses an LZ4 frame declaring more than LZ4 can expand to', () => {
    const frame = Buffer.from([0xc4, 0x4b, 0x02, 0xff, 0xff, 0xff, 0x1f, 0x00, 0x01]);
    expect(() => handlerEntrySerializer().decode(frame)).toThrow(/refused/);
  });

  it('refuses foreign and corrupt bytes', () => {
    const codec = handlerEntrySerializer();
    expect(() => codec.decode(new TextEncoder().encode('{"kind":"APP_PAGE"}'))).toThrow(/magic/);
    const good = codec.encode({ lastModified: 1, tags: [], value: appRoute() });
    expect(() => codec.decode(good.subarray(0, good.byteLength - 5))).toThrow();
  });
});

describe('cache handler', () => {
  it('round-trips every value kind across instances through the shared store', async () => {
    const [a, b] = instances(new MemoryBackend());
    const values: [string, IncrementalCacheValue, GetContext, Record<string, unknown>][] = [
      ['/route-cache/app-page/abc/$/blog', appPage(), pageCtx, { cacheControl }],
      ['/route-cache/app-route/def/$/api/items', appRoute(), { kind: 'APP_ROUTE' }, { cacheControl }],
      ['/legacy', pagesPage(), { kind: 'PAGES' }, { cacheControl }],
      ['/redirect', redirect(), { kind: 'PAGES' }, { cacheControl }],
      ['f'.repeat(64), fetchValue(), fetchCtx(), { fetchCache: true, tags: ['posts'], revalidate: 60 }],
      ['image-key', image(), { kind: 'IMAGE' }, { kind: 'IMAGE', cacheControl: { revalidate: 3600 } }],
    ];
    for (const [key, value, , setCtx] of values) await a.handler().set(key, value, setCtx);
    for (const [key, value, getCtx, setCtx] of values) {
      const got = await b.handler().get(key, getCtx);
      expect(got, key).not.toBeNull();
      expect(got!.value).toEqual(value);
      expect(Math.abs(got!.lastModified - Date.now())).toBeLessThan(5_000);
      if (setCtx.cacheControl && value.kind !== 'FETCH') expect(got!.cacheControl).toEqual(setCtx.cacheControl);
    }
    expect(b.rt.entries.stats().l2Hits).toBe(values.length);
  });

  it('answers an L1 hit with the stored object, without decoding again', async () => {
    const [a] = instances(new MemoryBackend());
    // The store's first write creates the invalidation counter, and an instance that sees it appear drops its L1
    // once (store/epoch.ts): past that, an instance's own writes stay in its L1.
    await a.handler().set('/warm', appPage(), { cacheControl });
    await a.handler().get('/warm', pageCtx);
    await a.handler().set('/p', appPage(), { cacheControl });
    const first = await a.handler().get('/p', pageCtx);
    const second = await a.handler().get('/p', pageCtx);
    expect(second!.value).toBe(first!.value);
    expect(a.rt.entries.stats().l1Hits).toBe(2);
  });

  it('serves fallback shells and postponed PPR pages without their RSC payload, as Next does', async () => {
    const [a] = instances(new MemoryBackend());
    await a.handler().set('/ppr', postponedPage(), { cacheControl, isRoutePPREnabled: true });
    const normal = await a.handler().get('/ppr', { kind: 'APP_PAGE', isRoutePPREnabled: false });
    expect((normal!.value as { rscData?: Buffer }).rscData).toBeDefined();
    const ppr = await a.handler().get('/ppr', { kind: 'APP_PAGE', isRoutePPREnabled: true });
    expect((ppr!.value as { rscData?: Buffer }).rscData).toBeUndefined();
    expect((ppr!.value as { postponed?: string }).postponed).toBe(postponedPage().kind === 'APP_PAGE' && (postponedPage() as { postponed: string }).postponed);
    const fallback = await a.handler().get('/ppr', { kind: 'APP_PAGE', isFallback: true });
    expect((fallback!.value as { rscData?: Buffer }).rscData).toBeUndefined();
  });

  it('stores a null value (a route that rendered nothing) and returns it as such', async () => {
    const [a, b] = instances(new MemoryBackend());
    await a.handler().set('/gone', null, { cacheControl });
    const got = await b.handler().get('/gone', pageCtx);
    expect(got).toMatchObject({ value: null, cacheControl });
  });

  it('returns a miss for a value of the other kind (no InvariantError in Next)', async () => {
    const [a] = instances(new MemoryBackend());
    await a.handler().set('k', fetchValue(), { fetchCache: true, tags: [] });
    expect(await a.handler().get('k', pageCtx)).toBeNull();
  });

  describe('tags', () => {
    it('revalidateTag without durations expires tagged pages and fetches on every instance', async () => {
      const [a, b] = instances(new MemoryBackend());
      await a.handler().set('/blog', appPage(), { cacheControl });
      await a.handler().set('fetch-1', fetchValue(), { fetchCache: true, tags: ['posts'] });
      await a.handler().set('/other', appPage('_N_T_/other'), { cacheControl });
      expect(await b.handler().get('/blog', pageCtx)).not.toBeNull();
      await sleep(2);
      await a.handler().revalidateTag('posts');
      b.rt.tags.invalidateLocal(['posts']); // what the invalidation message does (tested with Redis elsewhere)
      expect(await a.handler().get('/blog', pageCtx)).toBeNull();
      expect(await b.handler().get('/blog', pageCtx)).toBeNull();
      expect(await b.handler().get('fetch-1', fetchCtx())).toBeNull();
      expect(await b.handler().get('/other', pageCtx)).not.toBeNull();
      // A page regenerated after the revalidation is fresh again.
      await sleep(2);
      await b.handler().set('/blog', appPage(), { cacheControl });
      expect(await a.handler().get('/blog', pageCtx)).not.toBeNull();
    });

    it('revalidatePath arrives as an _N_T_ soft tag and reaches fetches through ctx.softTags', async () => {
      const [a] = instances(new MemoryBackend());
      await a.handler().set('fetch-2', fetchValue(), { fetchCache: true, tags: ['unrelated'] });
      await a.handler().set('/blog', appPage(), { cacheControl });
      await sleep(2);
      await a.handler().revalidateTag(['_N_T_/blog']);
      expect(await a.handler().get('fetch-2', fetchCtx({ tags: ['unrelated'], softTags: ['_N_T_/layout', '_N_T_/blog'] }))).toBeNull();
      expect(await a.handler().get('/blog', pageCtx)).toBeNull();
    });

    it('revalidateTag(t, { expire }) serves the entry stale (backdated) until expire, then misses', async () => {
      const [a, b] = instances(new MemoryBackend());
      await a.handler().set('/blog', appPage(), { cacheControl });
      await a.handler().set('fetch-1', fetchValue(), { fetchCache: true, tags: ['posts'] });
      await sleep(2);
      await a.handler().revalidateTag(['posts'], { expire: 1 });
      const page = await b.handler().get('/blog', pageCtx);
      expect(page).not.toBeNull();
      // Next computes stale as lastModified + revalidate * 1000 < now.
      expect(page!.lastModified + 60 * 1000).toBeLessThan(Date.now());
      // Backdated just past its revalidate time (a 1 s margin for clock drift), not to the epoch.
      expect(page!.lastModified).toBeGreaterThan(Date.now() - 62_000);
      const fetched = await b.handler().get('fetch-1', fetchCtx());
      expect(fetched!.lastModified + 60 * 1000).toBeLessThan(Date.now());
      await sleep(1_100);
      b.rt.tags.invalidateLocal(['posts']);
      expect(await b.handler().get('/blog', pageCtx)).toBeNull();
      expect(await b.handler().get('fetch-1', fetchCtx())).toBeNull();
    });

    it('makes a page that never revalidates stale with a 1 s window', async () => {
      const [a] = instances(new MemoryBackend());
      await a.handler().set('/static', appPage(), { cacheControl: { revalidate: false } as never });
      await sleep(2);
      await a.handler().revalidateTag(['posts'], { expire: 3600 });
      const got = await a.handler().get('/static', pageCtx);
      expect(got!.cacheControl?.revalidate).toBe(1);
      expect(got!.lastModified + 1000).toBeLessThan(Date.now());
    });

    it('writes tag state with TTLs, one or two keys per tag, without touching entries', async () => {
      const backend = new MemoryBackend();
      const [a] = instances(backend, { maxTtlSeconds: 100, readYourWrites: false }); // counts tag keys only, no epoch keys
      for (let i = 0; i < 50; i++) await a.handler().set(`/p${i}`, appPage(), { cacheControl });
      const before = backend.size;
      await a.handler().revalidateTag(['posts']);
      await a.handler().revalidateTag(['posts'], { expire: 50 });
      expect(backend.size).toBe(before + 2); // the stale and the expired key of one tag
      const ttlExpired = await backend.getTtl('cachekit:{test-app.tags}:e:posts');
      const ttlStale = await backend.getTtl('cachekit:{test-app.tags}:s:posts');
      expect(ttlExpired).toBeGreaterThan(140);
      expect(ttlExpired).toBeLessThanOrEqual(150);
      expect(ttlStale).toBeLessThanOrEqual(100);
    });
  });

  describe('namespacing', () => {
    it('scopes pages and routes by deployment; shares fetch entries across deployments', async () => {
      const backend = new MemoryBackend();
      const [old] = instances(backend, { deploymentId: 'build-A' });
      const [current] = instances(backend, { deploymentId: 'build-B' });
      await old.handler().set('/blog', appPage(), { cacheControl });
      await old.handler().set('fetch-1', fetchValue(), { fetchCache: true, tags: ['posts'] });
      expect(await current.handler().get('/blog', pageCtx)).toBeNull();
      expect(await current.handler().get('fetch-1', fetchCtx())).not.toBeNull();
    });

    it('keeps two apps apart by namespace', async () => {
      const backend = new MemoryBackend();
      const [shop] = instances(backend, { namespace: 'shop' });
      const [blog] = instances(backend, { namespace: 'blog' });
      await shop.handler().set('fetch-1', fetchValue(), { fetchCache: true, tags: ['posts'] });
      expect(await blog.handler().get('fetch-1', fetchCtx())).toBeNull();
      await blog.handler().set('fetch-1', fetchValue(), { fetchCache: true, tags: ['posts'] });
      await sleep(2);
      await blog.handler().revalidateTag('posts');
      expect(await shop.handler().get('fetch-1', fetchCtx())).not.toBeNull();
    });

    it('reads the deployment from BUILD_ID next to serverDistDir', async () => {
      const { mkdtemp, writeFile, mkdir } = await import('node:fs/promises');
      const os = await import('node:os');
      const path = await import('node:path');
      const dir = await mkdtemp(path.join(os.tmpdir(), 'ck-build-'));
      await mkdir(path.join(dir, 'server'));
      await writeFile(path.join(dir, 'BUILD_ID'), 'abc123\n');
      const rt = new CacheStack({ backend: new MemoryBackend(), namespace: 'x' });
      expect(rt.deploymentId(path.join(dir, 'server'))).toBe(process.env.NEXT_DEPLOYMENT_ID || 'abc123');
    });
    it('reads a missing BUILD_ID once outside a build, and again on every call during one', async () => {
      const { mkdtemp, writeFile, mkdir } = await import('node:fs/promises');
      const os = await import('node:os');
      const path = await import('node:path');
      const phase = process.env.NEXT_PHASE;
      try {
        for (const building of [false, true]) {
          const dir = await mkdtemp(path.join(os.tmpdir(), 'ck-build-'));
          await mkdir(path.join(dir, 'server'));
          if (building) process.env.NEXT_PHASE = 'phase-production-build';
          else delete process.env.NEXT_PHASE;
          const rt = new CacheStack({ backend: new MemoryBackend(), namespace: 'x' });
          expect(rt.deploymentId(path.join(dir, 'server'))).toBe(process.env.NEXT_DEPLOYMENT_ID || 'build');
          await writeFile(path.join(dir, 'BUILD_ID'), 'late\n');
          // next start cannot run without BUILD_ID: a file that appears later is not read; during next build it is.
          expect(rt.deploymentId(path.join(dir, 'server'))).toBe(process.env.NEXT_DEPLOYMENT_ID || (building ? 'late' : 'build'));
          await rt.close();
        }
      } finally {
        if (phase === undefined) delete process.env.NEXT_PHASE;
        else process.env.NEXT_PHASE = phase;
      }
    });
  });

  it("reads a fetch entry's tag states alongside the entry, not after it (one round trip when cold)", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const events: string[] = [];
    // The entry read waits until released: the tag states must have been asked for by then.
    class Gated extends MemoryBackend {
      override async getWithTtl(key: string) {
        events.push('entry');
        await gate;
        return super.getWithTtl(key);
      }
      override async getMany(keys: readonly string[]) {
        events.push('tags');
        return super.getMany(keys);
      }
    }
    const backend = new Gated();
    const [writer] = instances(backend, { l1: false });
    // Next passes a fetch's tags in both contexts (and in the value).
    await writer.handler().set('fetch-1', fetchValue(), { fetchCache: true, tags: ['posts', 'post-1'] });
    const [, reader] = instances(backend, { l1: false });
    events.length = 0;
    const result = reader.handler().get('fetch-1', fetchCtx({ tags: ['posts', 'post-1'] }));
    await sleep(5);
    expect([...events].sort()).toEqual(['entry', 'tags']); // both in flight at once
    release();
    expect((await result)?.value).toEqual(fetchValue());
    expect([...events].sort()).toEqual(['entry', 'tags']); // the states read alongside served the verdict: no second read
  });

  describe('failures', () => {
    const broken = (): Backend => {
      const fail = async (): Promise<never> => {
        throw new BackendError('connection refused', { kind: 'transient', backend: 'broken' });
      };
      return { get: fail, set: fail, delete: fail, exists: fail, healthCheck: fail };
    };

    it('never throws: misses, dropped writes and local-only revalidations, all reported', async () => {
      const errors: BackendError[] = [];
      const [a] = instances(broken(), { onError: (e) => errors.push(e), breaker: false });
      const handler = a.handler();
      await expect(handler.set('/p', appPage(), { cacheControl })).resolves.toBeUndefined();
      await expect(handler.get('/q', pageCtx)).resolves.toBeNull();
      await expect(handler.revalidateTag(['posts'])).resolves.toBeUndefined();
      expect(errors.length).toBeGreaterThanOrEqual(3);
      expect(errors.every((e) => e instanceof BackendError)).toBe(true);
    });

    it('answers within the deadline when the backend hangs', async () => {
      const hang = (): Promise<never> => new Promise(() => {});
      const backend: Backend = { get: hang, set: hang, delete: hang, exists: hang, healthCheck: hang };
      const [a] = instances(backend, { timeoutMs: 100, onError: () => {} });
      const started = Date.now();
      expect(await a.handler().get('/p', pageCtx)).toBeNull();
      await a.handler().set('/p', appPage(), { cacheControl });
      await a.handler().revalidateTag('x');
      expect(Date.now() - started).toBeLessThan(2_000);
    });

    it('rejects invalid options when the handler class is created, naming the option', () => {
      expect(() => createCacheHandler({ keyprefix: 'x' } as never)).toThrow(/keyprefix/);
      expect(() => createCacheHandler({ maxTtlSeconds: -5 })).toThrow(/maxTtlSeconds/);
      expect(() => createCacheHandler({ l1: { maxSizeMb: 0 } })).toThrow(/l1\.maxSizeMb/);
    });

    it('does not cache a value kind it does not know', async () => {
      const backend = new MemoryBackend();
      const [a] = instances(backend);
      await a.handler().set('k', { kind: 'FUTURE_KIND' } as never, {});
      expect(backend.size).toBe(0);
    });
  });

  it('constructs cheaply: every instance shares one stack', () => {
    const Handler = createCacheHandler({ backend: new MemoryBackend(), namespace: 'cheap' });
    const rt = Handler.stack();
    for (let i = 0; i < 1000; i++) new Handler({});
    expect(Handler.stack()).toBe(rt);
  });

  it('a FETCH entry answers to its stored tags too', async () => {
    const [a] = instances(new MemoryBackend());
    const value = fetchValue() as FetchValue;
    await a.handler().set('f', value, { fetchCache: true, tags: ['post-1'] });
    await sleep(2);
    await a.handler().revalidateTag('post-1');
    expect(await a.handler().get('f', fetchCtx({ tags: [] }))).toBeNull();
  });
});
