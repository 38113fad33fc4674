/**
 * OpenTelemetry spans on a real Redis, recorded by the SDK's in-memory exporter as an app registers it: handler and
 * loader spans nest under the request's span, L2 spans under them, with the documented attributes and no key content.
 */
import { context, trace, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisBackend } from '../../src/backends/redis.js';
import { cache } from '../../src/loaders/cache.js';
import { handlerClassFor } from '../../src/next/cache-handler.js';
import { disableTracing, enableTracing } from '../../src/observe/tracing.js';
import { getStack, resetStacks, type CacheStack } from '../../src/stack/stack.js';
import { startRedis } from '../support/servers.js';
import { appPage } from '../next/fixtures.js';

const exporter = new InMemorySpanExporter();
let redis: Awaited<ReturnType<typeof startRedis>>;
let backend: RedisBackend;
let stack: CacheStack;
let tracer: Tracer;
const handler = () => new (handlerClassFor(() => stack))({});

/** Runs `fn` in a span standing for Next's request span; returns its span id. */
async function request(fn: () => Promise<unknown>): Promise<string> {
  return tracer.startActiveSpan('GET /blog/[slug]', async (span) => {
    try {
      await fn();
    } finally {
      span.end();
    }
    return span.spanContext().spanId;
  });
}

const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;
const childrenOf = (id: string) => exporter.getFinishedSpans().filter((s) => parentOf(s) === id);
const eventsOf = (id: string) =>
  exporter
    .getFinishedSpans()
    .find((s) => s.spanContext().spanId === id)!
    .events.map((e) => ({ name: e.name, attributes: e.attributes }));

beforeAll(async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
  tracer = trace.getTracer('test-app');
  redis = await startRedis();
  backend = new RedisBackend({ url: redis.url });
  stack = getStack({ backend, namespace: 'tracing', deploymentId: 'd1' });
  await stack.ready;
  expect(await enableTracing()).toBe(true);
});

afterAll(async () => {
  disableTracing();
  trace.disable();
  context.disable();
  await resetStacks();
  await backend.close();
  await redis.stop();
});

describe('OpenTelemetry spans', () => {
  it('nest handler spans under the request span and L2 spans under them, with hit, layer and no key content', async () => {
    const key = '/blog/secret-slug-4711';
    exporter.reset();
    const missRequest = await request(() => handler().get(key, { kind: 'APP_PAGE' }));
    const [get] = childrenOf(missRequest);
    expect(get).toMatchObject({ name: 'cachekit.get', kind: 0 /* INTERNAL */ });
    expect(get!.attributes).toMatchObject({ 'cachekit.kind': 'page', 'cachekit.outcome': 'miss', 'cachekit.layer': 'none', 'cachekit.hit': false });
    expect(get!.attributes['cachekit.key_hash']).toMatch(/^[0-9a-f]{16}$/);
    const l2 = childrenOf(get!.spanContext().spanId);
    expect(l2.find((s) => s.name === 'get')).toMatchObject({
      name: 'get',
      kind: 2 /* CLIENT */,
      attributes: { 'db.system.name': 'redis', 'db.operation.name': 'get' },
    });
    // Beside it, the states of the tags the key tells (its pathname's): test/next/implicit-tags-read-ahead.test.ts.
    expect(l2.map((s) => s.name).sort()).toEqual(['get', 'tag_read']);

    const setRequest = await request(() => handler().set(key, appPage('secret-tag'), { cacheControl: { revalidate: 60, expire: 600 } }));
    const [set] = childrenOf(setRequest);
    expect(set!.name).toBe('cachekit.set');
    expect(childrenOf(set!.spanContext().spanId).map((s) => s.name)).toContain('set');

    // An L1 hit makes no span of its own (by default): its outcome is an event on the request's span.
    const hitRequest = await request(() => handler().get(key, { kind: 'APP_PAGE' }));
    // (The first read of the tag's state from Redis is still a CLIENT span, under the request's.)
    expect(childrenOf(hitRequest).map((s) => [s.name, s.kind])).toEqual([['tag_read', 2]]);
    expect(eventsOf(hitRequest)).toEqual([
      { name: 'cachekit.lookup', attributes: { 'cachekit.kind': 'page', 'cachekit.outcome': 'hit', 'cachekit.layer': 'l1', 'cachekit.hit': true } },
    ]);

    const revalidateRequest = await request(() => handler().revalidateTag('secret-tag', { expire: 0 }));
    const [revalidate] = childrenOf(revalidateRequest);
    expect(revalidate).toMatchObject({ name: 'cachekit.revalidate_tag', attributes: { 'cachekit.profile': 'hard' } });
    expect(childrenOf(revalidate!.spanContext().spanId).map((s) => s.name)).toContain('tag_write');

    // Nothing of the key, the tag or the value in any attribute.
    const text = JSON.stringify(exporter.getFinishedSpans().map((s) => s.attributes));
    expect(text).not.toMatch(/secret|blog|ünïcödé/);
  });

  it('gives a cache(fn) call a loader span with its outcome and layer', async () => {
    const load = cache(async (id: string) => ({ id, at: 1 }), { name: 'traced-loader', backend, ttl: 60 });
    exporter.reset();
    const first = await request(() => load('private-id'));
    const second = await request(() => load('private-id'));
    const [miss] = childrenOf(first);
    expect(miss).toMatchObject({ name: 'cachekit.loader', attributes: { 'cachekit.kind': 'loader', 'cachekit.outcome': 'miss', 'cachekit.hit': false } });
    expect(childrenOf(miss!.spanContext().spanId).some((s) => s.attributes['db.system.name'] === 'redis')).toBe(true);
    expect(childrenOf(second)).toEqual([]);
    expect(eventsOf(second)).toEqual([
      { name: 'cachekit.lookup', attributes: { 'cachekit.kind': 'loader', 'cachekit.outcome': 'hit', 'cachekit.layer': 'l1', 'cachekit.hit': true } },
    ]);

    // Asked for (enableTracing, or CACHEKIT_TRACE_L1_HITS=1), an L1 hit gets its span like any lookup.
    expect(await enableTracing({ l1HitSpans: true })).toBe(true);
    const spanned = await request(() => load('private-id'));
    const [hit] = childrenOf(spanned);
    expect(hit).toMatchObject({ name: 'cachekit.loader', attributes: { 'cachekit.kind': 'loader', 'cachekit.outcome': 'hit', 'cachekit.layer': 'l1' } });
    expect(eventsOf(spanned)).toEqual([]);
    expect(JSON.stringify(exporter.getFinishedSpans().map((s) => s.attributes))).not.toContain('private-id');
  });

  it('read CACHEKIT_TRACE_L1_HITS when enableTracing does not say, and refuse a bad l1HitSpans', async () => {
    const key = '/env-l1-spans';
    await handler().set(key, appPage('t'), { cacheControl: { revalidate: 60, expire: 600 } });
    const before = process.env.CACHEKIT_TRACE_L1_HITS;
    try {
      process.env.CACHEKIT_TRACE_L1_HITS = '1';
      expect(await enableTracing()).toBe(true);
      exporter.reset();
      const spanned = await request(() => handler().get(key, { kind: 'APP_PAGE' }));
      expect(childrenOf(spanned).map((s) => [s.name, s.attributes['cachekit.layer']])).toEqual([['cachekit.get', 'l1']]);
      process.env.CACHEKIT_TRACE_L1_HITS = '0';
      expect(await enableTracing()).toBe(true);
      const evented = await request(() => handler().get(key, { kind: 'APP_PAGE' }));
      expect(childrenOf(evented)).toEqual([]);
      expect(eventsOf(evented).map((e) => e.attributes?.['cachekit.layer'])).toEqual(['l1']);
    } finally {
      if (before === undefined) delete process.env.CACHEKIT_TRACE_L1_HITS;
      else process.env.CACHEKIT_TRACE_L1_HITS = before;
    }
    await expect(enableTracing({ l1HitSpans: 'yes' as never })).rejects.toThrow(/option `l1HitSpans` must be a boolean, got "yes"/);
    await expect(enableTracing({ l1HitSpan: true } as never)).rejects.toThrow(/l1HitSpan/);
    expect(await enableTracing()).toBe(true);
  });

  it("give a 'use cache' lookup the L1 answers an event, and one that reads Redis a span", async () => {
    const { useCacheHandlerFor } = await import('../../src/next/use-cache-handler.js');
    const useCache = useCacheHandlerFor(() => stack);
    const cacheKey = '["build","private-fn",[]]';
    const missed = await request(() => useCache.get(cacheKey, []));
    expect(childrenOf(missed).map((s) => [s.name, s.attributes['cachekit.outcome']])).toEqual([['cachekit.get', 'miss']]);
    const value = new Uint8Array([1, 2, 3]);
    const entry = {
      value: new ReadableStream<Uint8Array>({
        start: (c) => {
          c.enqueue(value);
          c.close();
        },
      }),
      tags: ['t'],
      stale: 60,
      timestamp: Date.now(),
      expire: 600,
      revalidate: 60,
    };
    await useCache.set(cacheKey, Promise.resolve(entry));
    exporter.reset();
    const hit = await request(async () => {
      const got = await useCache.get(cacheKey, []);
      expect(got).toBeDefined();
    });
    expect(childrenOf(hit)).toEqual([]);
    expect(eventsOf(hit)).toEqual([
      { name: 'cachekit.lookup', attributes: { 'cachekit.kind': 'use-cache', 'cachekit.outcome': 'hit', 'cachekit.layer': 'l1', 'cachekit.hit': true } },
    ]);
  });
});
