/**
 * Every handler operation, run inside a Cache Components prerender as Next runs it, must leave the prerender alive.
 *
 * The definition of "sync I/O" is Next's own: its node-environment extensions (the modules `next start` and
 * `next build` load) patch Date, Math.random, node:crypto and web crypto to call `io()`, which aborts the current
 * prerender's controller. Each operation here runs inside Next's real work and work-unit AsyncLocalStorage stores, as
 * a route handler's GET would; a clock read, a sync random draw (nonce, token, jitter) anywhere on the handler path,
 * including in work it leaves running in the background, aborts it and fails this test with the stack that did it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileBackend } from '../../src/backends/file.js';
import { MemcachedBackend } from '../../src/backends/memcached.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { RedisBackend } from '../../src/backends/redis.js';
import { isClosable, type Backend } from '../../src/protocol/backend.js';
import { setLogger } from '../../src/shared/log.js';
import { createCacheHandler } from '../../src/next/cache-handler.js';
import { resetStacks, type CachekitNextOptions } from '../../src/stack/stack.js';
import type { GetContext } from '../../src/wire/next-types.js';
import { createUseCacheHandler, type UseCacheEntry } from '../../src/next/use-cache-handler.js';
import { refusedAddress, startBlackhole, startMemcached, startRedis } from '../support/servers.js';
import { appRoute, fetchValue } from './fixtures.js';

const require = createRequire(import.meta.url);
// What `next start` loads first (server/node-environment): the baseline (AsyncLocalStorage for Next's stores), then
// the extensions that define sync I/O.
require('next/dist/server/node-environment-baseline.js');
for (const extension of ['date', 'random', 'node-crypto', 'web-crypto']) {
  require(`next/dist/server/node-environment-extensions/${extension}.js`);
}
// ESM named imports (`import { randomUUID } from 'node:crypto'`) see the patched functions only after this.
syncBuiltinESMExports();

type Storage = { run<R>(store: unknown, fn: () => R): R };
const { workUnitAsyncStorage } = require('next/dist/server/app-render/work-unit-async-storage.external.js') as { workUnitAsyncStorage: Storage };
const { workAsyncStorage } = require('next/dist/server/app-render/work-async-storage.external.js') as { workAsyncStorage: Storage };

/** The clock Next's own default handler reads (Date.now() would itself abort a prerender). */
const nowMs = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MASTER_KEY = 'a1'.repeat(32);

interface Render {
  label: string;
  controller: AbortController;
  tracking: { syncDynamicErrorWithStack: Error | null; dynamicAccesses: { expression: string }[] };
}
const renders: Render[] = [];

/** Runs `fn` as code inside a prerender of route /api/x: what Next's io() checks is all here. */
function prerender<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const tracking = { isDebugDynamicAccesses: true, dynamicAccesses: [], syncDynamicErrorWithStack: null, syncDynamicErrorWithStackPostMicrotask: false };
  renders.push({ label, controller, tracking });
  const workUnitStore = {
    type: 'prerender',
    phase: 'render',
    implicitTags: { tags: [], expirationsByCacheKind: new Map() },
    controller,
    renderSignal: controller.signal,
    cacheSignal: null,
    dynamicTracking: tracking,
    revalidate: 0xfffffffe,
    expire: 0xfffffffe,
    stale: 300,
    tags: null,
    rootParams: {},
    resumeDataCache: null,
    hmrRefreshHash: undefined,
    varyParamsAccumulator: null,
    fallbackRouteParams: null,
    stagedRendering: null,
    ensureStaticLevel: null,
    prerenderDataTracking: null,
    isFallbackUpgradeable: false,
  };
  const workStore = { route: '/api/x', page: '/api/x/route', isStaticGeneration: true, forceStatic: false, dynamicShouldError: false };
  return workUnitAsyncStorage.run(workUnitStore, () => workAsyncStorage.run(workStore, fn));
}

/** The prerenders since `from` that were aborted, each with the stack of the read that aborted it. */
function aborted(from: number): string[] {
  return renders
    .slice(from)
    .filter((r) => r.controller.signal.aborted)
    .map((r) => {
      const stack = r.tracking.syncDynamicErrorWithStack?.stack ?? String(r.controller.signal.reason);
      const frames = stack
        .split('\n')
        .filter((line) => line.includes(' at ') && !line.includes('next/dist/server/'))
        .slice(0, 8);
      return `${r.label}: ${r.tracking.dynamicAccesses.map((a) => a.expression).join(', ')}\n${frames.join('\n')}`;
    });
}

const warnings: string[] = [];
const stops: (() => Promise<void>)[] = [];
const backends: Backend[] = [];
let fileDir: string;

beforeAll(async () => {
  // Logged warnings are collected: the test runner's console capture is not part of the handler path.
  setLogger({ info: () => {}, warn: (message) => warnings.push(message) });
  fileDir = await mkdtemp(path.join(os.tmpdir(), 'ck-prerender-'));
});

afterAll(async () => {
  await resetStacks();
  await Promise.all(backends.map((b) => (isClosable(b) ? b.close() : undefined)));
  await Promise.all(stops.map((stop) => stop()));
  await rm(fileDir, { recursive: true, force: true });
  setLogger(null);
});

function keep<B extends Backend>(backend: B): B {
  backends.push(backend);
  return backend;
}

/** Two instances' backends (separate objects over one store), or null for L1-only. */
const stores: Record<string, () => Promise<(() => Backend | null) | null>> = {
  'memory (L1 only)': async () => null,
  'memory L2': async () => {
    const shared = new MemoryBackend();
    return () => shared;
  },
  file: async () => () => keep(new FileBackend({ cacheDir: fileDir })),
  memcached: async () => {
    const server = await startMemcached();
    stops.push(() => server.stop());
    return () => keep(new MemcachedBackend({ servers: [server.address] }));
  },
  redis: async () => {
    const server = await startRedis();
    stops.push(() => server.stop());
    return () => keep(new RedisBackend({ url: server.url }));
  },
};

const routeCtx: GetContext = { kind: 'APP_ROUTE', isRoutePPREnabled: false, isFallback: false };
const fetchCtx: GetContext = {
  kind: 'FETCH',
  revalidate: 60,
  fetchUrl: 'https://api.example.com/posts/1',
  fetchIdx: 0,
  tags: ['posts'],
  softTags: ['_N_T_/api/x'],
};
const cacheControl = { revalidate: 60, expire: 3600 };

function useCacheEntry(text: string, tags: string[], overrides: Partial<UseCacheEntry> = {}): UseCacheEntry {
  return {
    value: new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(text));
        controller.close();
      },
    }),
    tags,
    stale: 300,
    timestamp: nowMs(),
    expire: 3600,
    revalidate: 900,
    ...overrides,
  };
}

const readText = async (entry: UseCacheEntry | undefined) => (entry ? new Response(entry.value).text() : undefined);

/**
 * The whole life of a route's entries, each step a prerender of its own: handler construction, writes, hits from
 * L1 and from another instance, tags marked stale and expired (the stale answer, the miss, getExpiration), the
 * 15.5 shapes. Returns what was read, so the test also checks the operations did their work.
 */
async function lifeCycle(label: string, options: CachekitNextOptions, other: CachekitNextOptions | null) {
  const read: Record<string, unknown> = {};
  const step = <T>(name: string, fn: () => Promise<T>) => prerender(`${label} ${name}`, fn);

  const LegacyA = await step('legacy class', async () => createCacheHandler(options));
  const legacyA = () => new LegacyA({ serverDistDir: '/nonexistent/.next/server' });
  const useCacheA = await step('use-cache handler', async () => createUseCacheHandler(options));
  const LegacyB = other && createCacheHandler(other);
  const useCacheB = other && createUseCacheHandler(other);

  await step('legacy set route', () => legacyA().set('/api/x', appRoute(), { cacheControl }));
  await step('legacy set fetch', () => legacyA().set('fetch-1', fetchValue(), { fetchCache: true, tags: ['posts'] }));
  read.routeHit = (await step('legacy get route', () => legacyA().get('/api/x', routeCtx)))?.value?.kind;
  read.fetchHit = (await step('legacy get fetch', () => legacyA().get('fetch-1', fetchCtx)))?.value?.kind;
  await step('legacy resetRequestCache', async () => legacyA().resetRequestCache());

  await step('use-cache refreshTags', () => useCacheA.refreshTags());
  await step('use-cache set', () => useCacheA.set('key-1', Promise.resolve(useCacheEntry('v1', ['t1']))));
  await step('use-cache set untagged', () => useCacheA.set('key-2', Promise.resolve(useCacheEntry('v2', [], { revalidate: 2, expire: 400 }))));
  read.useCacheHit = await step('use-cache get', async () => readText(await useCacheA.get('key-1', ['_N_T_/api/x'])));
  read.untaggedHit = await step('use-cache get untagged', async () => readText(await useCacheA.get('key-2', [])));
  read.expirationBefore = await step('use-cache getExpiration', () => useCacheA.getExpiration(['t1', '_N_T_/api/x']));

  if (LegacyB && useCacheB) {
    const legacyB = () => new LegacyB({ serverDistDir: '/nonexistent/.next/server' });
    read.otherRoute = (await step('other instance legacy get', () => legacyB().get('/api/x', routeCtx)))?.value?.kind;
    read.otherUseCache = await step('other instance use-cache get', async () => readText(await useCacheB.get('key-1', [])));
  }

  // revalidateTag(t, 'max'): stale now, so the next read is served stale (backdated) while Next regenerates.
  await step('legacy revalidateTag stale', () => legacyA().revalidateTag(['posts', 'items'], {}));
  read.staleRoute = (await step('legacy get stale route', () => legacyA().get('/api/x', routeCtx)))?.value?.kind;
  read.staleFetch = (await step('legacy get stale fetch', () => legacyA().get('fetch-1', fetchCtx)))?.value?.kind;
  // revalidateTag(t, { expire: 1 }) from a Server Action reaches updateTags with durations.
  await step('use-cache updateTags expire 1', () => useCacheA.updateTags(['t1'], { expire: 1 }));
  read.staleUseCacheRevalidate = await step('use-cache get stale', async () => (await useCacheA.get('key-1', []))?.revalidate);
  read.expirationScheduled = await step('use-cache getExpiration scheduled', () => useCacheA.getExpiration(['t1']));
  await sleep(1_100);
  read.expirationPassed = await step('use-cache getExpiration passed', () => useCacheA.getExpiration(['t1']));
  read.expiredUseCache = await step('use-cache get expired', async () => readText(await useCacheA.get('key-1', [])));
  // updateTag(t) / revalidateTag(t) without a profile: expired now.
  await step('legacy revalidateTag expire', () => legacyA().revalidateTag('posts'));
  read.expiredFetch = await step('legacy get expired fetch', () => legacyA().get('fetch-1', fetchCtx));
  await step('use-cache updateTags now', () => useCacheA.updateTags(['items']));
  read.expiredRoute = await step('legacy get expired route', () => legacyA().get('/api/x', routeCtx));
  // Next 15.5's shapes.
  await step('use-cache expireTags (15.5)', () => useCacheA.expireTags('t2'));
  read.expiration155 = await step('use-cache getExpiration (15.5)', () => useCacheA.getExpiration('t2', 't3'));
  if (useCacheB) {
    read.otherExpired = await step('other instance use-cache get expired', async () => readText(await useCacheB.get('key-1', [])));
  }
  return read;
}

describe('handler operations inside a Cache Components prerender (Next 16 sync-I/O extensions)', () => {
  for (const [name, makeStore] of Object.entries(stores)) {
    for (const encryption of [false, true]) {
      const label = `${name}${encryption ? ' + encryption' : ''}`;
      it(`${label}: no operation aborts the prerender`, async () => {
        const store = await makeStore();
        const namespace = `prerender-${name.replace(/\W+/g, '-')}-${encryption ? 'enc' : 'plain'}`;
        const base: CachekitNextOptions = { namespace, deploymentId: 'build-1', ...(encryption ? { encryption: { masterKey: MASTER_KEY } } : {}) };
        const a = { ...base, backend: store ? store() : null };
        const b = store ? { ...base, backend: store() } : null;
        const before = renders.length;
        const read = await lifeCycle(label, a, b);
        await sleep(100); // work the operations left running (announcements, refreshes) has run by now
        expect(aborted(before), 'prerenders aborted by a sync clock or random read').toEqual([]);
        expect(renders.length - before).toBeGreaterThan(20);

        // The operations did their work (the abort check above is only as good as the paths it walked).
        expect(read).toMatchObject({
          routeHit: 'APP_ROUTE',
          fetchHit: 'FETCH',
          useCacheHit: 'v1',
          untaggedHit: 'v2',
          expirationBefore: 0,
          staleRoute: 'APP_ROUTE',
          staleFetch: 'FETCH',
          staleUseCacheRevalidate: -1,
          expirationScheduled: 0,
          expiredUseCache: undefined,
          expiredFetch: null,
          expiredRoute: null,
        });
        expect(read.expiration155).toBeGreaterThan(0);
        expect(read.expirationPassed).toBeGreaterThan(0);
        // A second instance shares nothing with an L1-only one.
        if (store) expect(read).toMatchObject({ otherRoute: 'APP_ROUTE', otherUseCache: 'v1', otherExpired: undefined });
      });
    }
  }

  for (const [name, unreachable] of [
    ['redis refused', async () => new RedisBackend({ url: `redis://${(await refusedAddress()).address}` })],
    [
      'memcached black hole',
      async () => {
        const hole = await startBlackhole();
        stops.push(() => hole.stop());
        return new MemcachedBackend({ servers: [hole.address] });
      },
    ],
  ] as const) {
    it(`${name}: the breaker opens, short-circuits and probes again, all inside prerenders, never aborting one`, async () => {
      const backend = keep(await unreachable());
      const options: CachekitNextOptions = {
        backend,
        namespace: `prerender-breaker-${name.replace(/\W+/g, '-')}`,
        timeoutMs: 100,
        breaker: { failureThreshold: 2, cooldownMs: 300 },
        encryption: { masterKey: MASTER_KEY },
      };
      const warned = warnings.length;
      const before = renders.length;
      const Legacy = createCacheHandler(options);
      const useCache = createUseCacheHandler(options);
      const round = async (n: number) => {
        const label = `${name} round ${n}`;
        await prerender(`${label} legacy get`, () => new Legacy({}).get('/api/x', routeCtx));
        await prerender(`${label} legacy set`, () => new Legacy({}).set('/api/x', appRoute(), { cacheControl }));
        await prerender(`${label} legacy revalidateTag`, () => new Legacy({}).revalidateTag(['posts'], { expire: 1 }));
        await prerender(`${label} use-cache get`, () => useCache.get('key-1', ['_N_T_/api/x']));
        await prerender(`${label} use-cache set`, () => useCache.set('key-1', Promise.resolve(useCacheEntry('v', ['t1']))));
        await prerender(`${label} use-cache getExpiration`, () => useCache.getExpiration(['t1', 'uncached-tag']));
        await prerender(`${label} use-cache updateTags`, () => useCache.updateTags(['t1']));
      };
      await round(1); // failures open the circuit
      await round(2); // open: short-circuited
      await sleep(400);
      await round(3); // half-open: one probe
      await sleep(100);
      expect(aborted(before), 'prerenders aborted by a sync clock or random read').toEqual([]);
      // The path under test was the failure path: misses reported, the circuit opened.
      const logged = warnings.slice(warned).join('\n');
      expect(logged).toMatch(/served as a miss/);
      expect(logged).toMatch(/circuit open/);
    });
  }
});
