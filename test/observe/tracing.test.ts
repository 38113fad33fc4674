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
    const [l2] = childrenOf(get!.spanContext().spanId);
    expect(l2).toMatchObject({ name: 'get', kind: 2 /* CLIENT */, attributes: { 'db.system.name': 'redis', 'db.operation.name': 'get' } });

    const setRequest = await request(() => handler().set(key, appPage('secret-tag'), { cacheControl: { revalidate: 60, expire: 600 } }));
    const [set] = childrenOf(setRequest);
    expect(set!.name).toBe('cachekit.set');
    expect(childrenOf(set!.spanContext().spanId).map((s) => s.name)).toContain('set');

    const hitRequest = await request(() => handler().get(key, { kind: 'APP_PAGE' }));
    expect(childrenOf(hitRequest)[0]!.attributes).toMatchObject({ 'cachekit.outcome': 'hit', 'cachekit.layer': 'l1', 'cachekit.hit': true });

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
    const [hit] = childrenOf(second);
    expect(miss).toMatchObject({ name: 'cachekit.loader', attributes: { 'cachekit.kind': 'loader', 'cachekit.outcome': 'miss', 'cachekit.hit': false } });
    expect(hit).toMatchObject({ name: 'cachekit.loader', attributes: { 'cachekit.kind': 'loader', 'cachekit.outcome': 'hit', 'cachekit.layer': 'l1' } });
    expect(childrenOf(miss!.spanContext().spanId).some((s) => s.attributes['db.system.name'] === 'redis')).toBe(true);
    expect(JSON.stringify(exporter.getFinishedSpans().map((s) => s.attributes))).not.toContain('private-id');
  });
});
