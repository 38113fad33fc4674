/**
 * `mergeRequests`: an L1 hit of a page, route or image answers after one turn of the event loop. Next's ResponseCache
 * reads a key through its Batcher (next/dist/lib/batcher.js, `getBatcher`): a request that arrives while a read of its
 * key is pending gets that read's result. A read that needs no I/O used to end within microtasks, before the next
 * request was even parsed, so Next merged nothing and ran its whole cache path per request (the hot-page gap to
 * Next's built-in cache, bench/e2e). Here with Next's own Batcher and scheduler, as ResponseCache wires them.
 */
import { createRequire } from 'node:module';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../src/backends/memory.js';
import { handlerClassFor } from '../../src/next/cache-handler.js';
import { ConfigError } from '../../src/shared/options.js';
import { subscribe, type TelemetryEvent } from '../../src/shared/telemetry.js';
import { CacheStack, resetStacks, type CachekitNextOptions } from '../../src/stack/stack.js';
import type { GetContext } from '../../src/wire/next-types.js';
import { appPage, fetchValue } from './fixtures.js';

const require = createRequire(import.meta.url);
type Batch = (key: { key: string; isOnDemandRevalidate: boolean }, fn: () => Promise<unknown>) => Promise<unknown>;
const { Batcher } = require('next/dist/lib/batcher.js') as {
  Batcher: {
    create(options: { cacheKeyFn(key: { key: string; isOnDemandRevalidate: boolean }): string; schedulerFn(fn: () => void): void }): { batch: Batch };
  };
};
const { scheduleOnNextTick } = require('next/dist/lib/scheduler.js') as { scheduleOnNextTick(fn: () => void): void };

const pageCtx: GetContext = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false };
const fetchCtx: GetContext = { kind: 'FETCH', revalidate: 60, fetchUrl: 'https://api.example.com/a', fetchIdx: 0, tags: [], softTags: [] };
const cacheControl = { revalidate: 3600, expire: 86_400 };

async function instance(options: CachekitNextOptions = {}) {
  const rt = new CacheStack({ backend: new MemoryBackend(), namespace: 'merge', deploymentId: 'b1', ...options });
  const Handler = handlerClassFor(() => rt);
  let gets = 0;
  const handler = () => {
    const h = new Handler({});
    const get = h.get.bind(h);
    h.get = (...args: Parameters<typeof get>) => {
      gets++;
      return get(...args);
    };
    return h;
  };
  await handler().set('/hot', appPage(), { cacheControl });
  expect(await handler().get('/hot', pageCtx)).not.toBeNull(); // in the L1 now
  gets = 0;
  return { rt, handler, gets: () => gets };
}

/** `n` requests for `/hot`, each in its own I/O-like callback (as sockets' data events are), through Next's Batcher. */
async function requests(handler: () => { get(key: string, ctx: GetContext): Promise<unknown> }, n: number): Promise<unknown[]> {
  const batcher = Batcher.create({
    cacheKeyFn: ({ key, isOnDemandRevalidate }) => `${key}-${isOnDemandRevalidate ? '1' : '0'}`,
    schedulerFn: scheduleOnNextTick,
  });
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<unknown>((resolve, reject) =>
          setImmediate(() => batcher.batch({ key: '/hot', isOnDemandRevalidate: false }, () => handler().get('/hot', pageCtx)).then(resolve, reject)),
        ),
    ),
  );
}

/** Whether `promise` settles only after a long run of microtasks (i.e. after a turn of the event loop). */
async function settlesAfterMicrotasks(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void promise.then(() => (settled = true));
  for (let i = 0; i < 2_000; i++) await Promise.resolve();
  const after = !settled;
  await promise;
  return after;
}

afterEach(async () => {
  await resetStacks();
});

describe('mergeRequests', () => {
  it("lets Next's Batcher merge concurrent requests for a hot page into one read (the default)", async () => {
    const merged = await instance();
    const results = await requests(merged.handler, 20);
    expect(results.every((r) => (r as { value: { kind: string } }).value.kind === 'APP_PAGE')).toBe(true);
    expect(merged.gets()).toBe(1);

    // Off: each request's read ends before the next one arrives, and Next reads once per request.
    const unmerged = await instance({ mergeRequests: false });
    await requests(unmerged.handler, 20);
    expect(unmerged.gets()).toBe(20);
  });

  it('waits one event-loop turn on an L1 hit of a response only: not on a fetch, not with the option off', async () => {
    const on = await instance();
    expect(await settlesAfterMicrotasks(on.handler().get('/hot', pageCtx))).toBe(true);
    await on.handler().set('f1', fetchValue(), { fetchCache: true, revalidate: 60, tags: [] });
    expect(await on.handler().get('f1', fetchCtx)).not.toBeNull();
    expect(await settlesAfterMicrotasks(on.handler().get('f1', fetchCtx))).toBe(false);

    const off = await instance({ mergeRequests: false });
    expect(await settlesAfterMicrotasks(off.handler().get('/hot', pageCtx))).toBe(false);
  });

  it("records the lookup before the turn: an L1 hit's duration (metrics, debug log) is the read's, not the wait's", async () => {
    const on = await instance();
    const events: TelemetryEvent[] = [];
    const unsubscribe = subscribe((event) => events.push(event));
    try {
      let settled = false;
      const got = on
        .handler()
        .get('/hot', pageCtx)
        .then(() => (settled = true));
      for (let i = 0; i < 2_000 && !events.some((e) => e.type === 'lookup'); i++) await Promise.resolve();
      expect(events.find((e) => e.type === 'lookup')).toMatchObject({ type: 'lookup', outcome: 'hit', layer: 'l1' });
      expect(settled).toBe(false); // recorded while the answer still waits for its turn
      await got;
    } finally {
      unsubscribe();
    }
  });

  it('refuses a value that is not a boolean, naming the option', () => {
    expect(() => new CacheStack({ backend: new MemoryBackend(), mergeRequests: 'yes' as unknown as boolean })).toThrow(ConfigError);
    expect(() => new CacheStack({ backend: new MemoryBackend(), mergeRequests: 'yes' as unknown as boolean })).toThrow(/mergeRequests/);
  });
});
