/**
 * Metrics on a real Redis, through the legacy handler as Next calls it: lookups by kind, layer and outcome, L2 latency
 * histograms and bytes, errors by BackendError kind once Redis is stopped, the breaker opening and closing again,
 * revalidations by profile; bounded label cardinality; `stats()` as a plain object; no listener, no work.
 */
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisBackend } from '../../src/backends/redis.js';
import { handlerClassFor } from '../../src/next/cache-handler.js';
import { registerMetrics } from '../../src/observe/prometheus.js';
import { stats } from '../../src/observe/collector.js';
import { countLookups, l2Call, lookup, lookupStarted, subscribe, telemetryOn, traced } from '../../src/shared/telemetry.js';
import { getStack, resetStacks, type CacheStack } from '../../src/stack/stack.js';
import type { GetContext } from '../../src/wire/next-types.js';
import { singleton } from '../../src/shared/registry.js';
import { startRedis } from '../support/servers.js';
import { appPage, fetchValue } from '../next/fixtures.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pageCtx: GetContext = { kind: 'APP_PAGE' };
const cacheControl = { revalidate: 3600, expire: 86_400 };

let redis: Awaited<ReturnType<typeof startRedis>>;
let backend: RedisBackend;
let stack: CacheStack;
let registry: Registry;
const handler = () => new (handlerClassFor(() => stack))({});

/** The value of one series (0 when it does not exist). */
async function value(name: string, labels: Record<string, string>): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name || (name.startsWith(`${m.name}_`) && String(m.type) === 'histogram'));
  const series = (metric?.values ?? []) as { value: number; labels: Record<string, string | number>; metricName?: string }[];
  const hit = series.find((s) => (s.metricName ?? name) === name && Object.entries(labels).every(([k, v]) => String(s.labels[k]) === v));
  return hit?.value ?? 0;
}

/** Every series line of the exposition (comments dropped). */
async function seriesLines(): Promise<string[]> {
  return (await registry.metrics()).split('\n').filter((line) => line && !line.startsWith('#'));
}

beforeAll(async () => {
  redis = await startRedis();
  backend = new RedisBackend({ url: redis.url, commandTimeoutMs: 2_000, connectTimeoutMs: 2_000 });
  stack = getStack({ backend, namespace: 'metrics', deploymentId: 'd1', timeoutMs: 3_000, breaker: { failureThreshold: 2, cooldownMs: 300 } });
  await stack.ready;
  registry = new Registry();
  await registerMetrics({ registry });
});

afterAll(async () => {
  await resetStacks();
  await backend.close();
  await redis.stop();
});

describe('metrics on a real Redis', () => {
  it('count lookups by kind, layer and outcome, and time every L2 operation', async () => {
    const getsBefore = await value('cachekit_l2_operation_duration_seconds_count', { backend: 'redis', operation: 'get', outcome: 'ok' });
    const setsBefore = await value('cachekit_l2_operation_duration_seconds_count', { backend: 'redis', operation: 'set', outcome: 'ok' });
    expect(await handler().get('/m', pageCtx)).toBeNull(); // miss: one L2 get
    await handler().set('/m', appPage('t-m'), { cacheControl }); // one L2 set
    expect(await handler().get('/m', pageCtx)).not.toBeNull(); // L1 hit
    stack.entries.invalidateLocal('cachekit:metrics:d1:r:/m');
    expect(await handler().get('/m', pageCtx)).not.toBeNull(); // L2 hit: one L2 get
    await handler().set('f-m', fetchValue(), { fetchCache: true, tags: ['t-f'] });
    expect(await handler().get('f-m', { kind: 'FETCH', revalidate: 60, tags: ['t-f'], softTags: [] })).not.toBeNull(); // fetch, L1

    // A revalidation with durations: the page is served stale once (from the L2, after its L1 copy is dropped).
    await handler().revalidateTag('t-m', { expire: 100 });
    await sleep(2);
    expect(await handler().get('/m', pageCtx)).not.toBeNull();

    const lookups = (labels: Record<string, string>) => value('cachekit_lookups_total', { backend: 'redis', ...labels });
    expect(await lookups({ kind: 'page', layer: 'none', outcome: 'miss' })).toBe(1);
    expect(await lookups({ kind: 'page', layer: 'l1', outcome: 'hit' })).toBe(1);
    expect(await lookups({ kind: 'page', layer: 'l2', outcome: 'hit' })).toBe(1);
    expect(await lookups({ kind: 'page', layer: 'l2', outcome: 'stale' })).toBe(1);
    expect(await lookups({ kind: 'fetch', layer: 'l1', outcome: 'hit' })).toBe(1);
    expect(await value('cachekit_revalidations_total', { profile: 'durations' })).toBe(1);

    // L2 gets: the miss, the L2 hit, the stale re-read. Sets: the page and the fetch.
    expect((await value('cachekit_l2_operation_duration_seconds_count', { backend: 'redis', operation: 'get', outcome: 'ok' })) - getsBefore).toBe(3);
    expect((await value('cachekit_l2_operation_duration_seconds_count', { backend: 'redis', operation: 'set', outcome: 'ok' })) - setsBefore).toBe(2);
    expect(await value('cachekit_l2_operation_duration_seconds_count', { backend: 'redis', operation: 'tag_write', outcome: 'ok' })).toBe(1);
    expect(await value('cachekit_l2_operation_duration_seconds_count', { backend: 'redis', operation: 'tag_read', outcome: 'ok' })).toBeGreaterThan(0);
    expect(await value('cachekit_l2_read_bytes_total', { backend: 'redis', operation: 'get' })).toBeGreaterThan(0);
    expect(await value('cachekit_l2_written_bytes_total', { backend: 'redis', operation: 'set' })).toBeGreaterThan(0);
    expect(await value('cachekit_l1_entries', { cache: 'cachekit-next', backend: 'redis' })).toBeGreaterThanOrEqual(2);
    expect(await value('cachekit_l1_bytes', { cache: 'cachekit-next', backend: 'redis' })).toBeGreaterThan(0);

    // The same figures as a plain object, no dependency needed.
    const plain = stats();
    expect(plain.lookups.page).toMatchObject({ l1Hits: 1, l2Hits: 1, stale: 1, misses: 1, hitRatio: 0.75 });
    expect(plain.l2.redis!.get!.calls).toBeGreaterThanOrEqual(3);
    expect(JSON.parse(JSON.stringify(plain))).toEqual(plain);
  });

  it('counts invalidation messages sent and received, and their lag', async () => {
    const otherBackend = new RedisBackend({ url: redis.url });
    const other = getStack({ backend: otherBackend, namespace: 'metrics', deploymentId: 'd1' });
    await other.ready;
    const sent = await value('cachekit_invalidation_messages_total', { direction: 'sent' });
    const received = await value('cachekit_invalidation_messages_total', { direction: 'received' });
    const lags = await value('cachekit_invalidation_lag_seconds_count', {});
    await handler().set('/announced', appPage('a'), { cacheControl });
    const deadline = Date.now() + 5_000;
    while ((await value('cachekit_invalidation_messages_total', { direction: 'received' })) === received && Date.now() < deadline) await sleep(10);
    expect((await value('cachekit_invalidation_messages_total', { direction: 'sent' })) - sent).toBe(1);
    expect((await value('cachekit_invalidation_messages_total', { direction: 'received' })) - received).toBe(1);
    expect((await value('cachekit_invalidation_lag_seconds_count', {})) - lags).toBe(1);
    expect(stats().invalidations.meanLagMs).toBeGreaterThanOrEqual(0);
    await other.close();
    await otherBackend.close();
  });

  it('adds no series for 1,000 distinct keys, and never names a key', async () => {
    await handler().get('/card-0', pageCtx);
    await handler().set('/card-0', appPage('card'), { cacheControl });
    await handler().get('/card-0', pageCtx);
    const before = await seriesLines();
    for (let i = 1; i <= 1000; i++) {
      await handler().get(`/card-${i}`, pageCtx);
      await handler().set(`/card-${i}`, appPage(`card,card-${i}`), { cacheControl });
      await handler().get(`/card-${i}`, pageCtx);
    }
    const after = await seriesLines();
    const names = (lines: string[]) => lines.map((line) => line.replace(/ [^ ]+$/, '')).sort();
    expect(names(after)).toEqual(names(before));
    expect(await registry.metrics()).not.toMatch(/card-|\/card/);
  });

  it('counts errors by kind once Redis is stopped, and the breaker opening and closing', async () => {
    const errors = async () => {
      const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === 'cachekit_l2_errors_total');
      return (metric?.values ?? []) as { value: number; labels: Record<string, string | number> }[];
    };
    // Every error series exists at 0 before the first error (else Prometheus would take that error as the baseline and
    // rate() would never show it): 5 operations x 5 kinds for the backend, and the breaker's transitions.
    const before = await errors();
    expect(before).toHaveLength(25);
    expect(before.every((s) => s.labels.backend === 'redis' && s.value === 0)).toBe(true);
    expect(await value('cachekit_breaker_transitions_total', { backend: 'redis', to: 'open' })).toBe(0);
    expect(await value('cachekit_breaker_state', { backend: 'redis' })).toBe(0);
    const port = redis.port;
    await redis.stop();
    for (let i = 0; i < 4; i++) expect(await handler().get(`/down-${i}`, pageCtx)).toBeNull(); // misses, never throws
    const seen = (await errors()).filter((s) => s.value > 0);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((s) => s.labels.backend === 'redis' && s.labels.error_kind === 'transient')).toBe(true);
    expect(seen.reduce((n, s) => n + s.value, 0)).toBeGreaterThanOrEqual(4);
    expect(await value('cachekit_breaker_transitions_total', { backend: 'redis', to: 'open' })).toBe(1);
    expect(await value('cachekit_breaker_state', { backend: 'redis' })).toBe(2);
    expect(stats().breakers.redis).toMatchObject({ state: 'open', opened: 1 });

    redis = await startRedis({ port });
    // After the cooldown, one probe goes through; its success closes the circuit.
    const deadline = Date.now() + 10_000;
    while ((await value('cachekit_breaker_state', { backend: 'redis' })) !== 0) {
      if (Date.now() > deadline) throw new Error('the breaker did not close');
      await sleep(100);
      await handler().get('/up', pageCtx);
    }
    expect(await value('cachekit_breaker_transitions_total', { backend: 'redis', to: 'half-open' })).toBeGreaterThanOrEqual(1);
    expect(await value('cachekit_breaker_transitions_total', { backend: 'redis', to: 'closed' })).toBeGreaterThanOrEqual(1);
  });
});

describe('no listener, no work', () => {
  it('hands back the backend call itself and computes no span attribute', async () => {
    // This file's registry listens: take the state as a process without metrics has it.
    type Sink = { active: boolean; lookups: boolean; listeners: unknown[]; quiet: unknown[]; counters: unknown[] };
    const sink = singleton('telemetry', (): Sink => ({ active: false, lookups: false, listeners: [], quiet: [], counters: [] }));
    const saved = { ...sink };
    Object.assign(sink, { active: false, lookups: false, listeners: [], quiet: [], counters: [] });
    try {
      expect(telemetryOn()).toBe(false);
      const call = Promise.resolve(new Uint8Array(3));
      expect(l2Call('redis', 'get', 'k', 0, () => call)).toBe(call);
      let computed = 0;
      const work = Promise.resolve(1);
      expect(
        traced(
          'cachekit.get',
          () => {
            computed++;
            return {};
          },
          () => work,
        ),
      ).toBe(work);
      expect(computed).toBe(0);
      const events: unknown[] = [];
      const stop = subscribe((e) => events.push(e));
      expect(telemetryOn()).toBe(true);
      await l2Call('redis', 'get', 'k', 0, () => call);
      expect(events).toMatchObject([{ type: 'l2', backend: 'redis', operation: 'get', bytesRead: 3, errorKind: null }]);
      stop();
      expect(telemetryOn()).toBe(false);

      // Counting lookups (what stats() and Prometheus do) costs an increment: no event, no clock read.
      const counted: unknown[][] = [];
      const stopCounting = countLookups((...args) => counted.push(args));
      const quietEvents: unknown[] = [];
      const stopQuiet = subscribe((e) => quietEvents.push(e), { lookups: false });
      expect(telemetryOn()).toBe(true);
      expect(lookupStarted()).toBe(0);
      expect(lookup('page', 'hit', 'l1', 'redis', '/k', 0, 'v')).toBe('v');
      expect(counted).toEqual([['page', 'hit', 'l1', 'redis']]);
      expect(quietEvents).toEqual([]);
      await l2Call('redis', 'get', 'k', 0, () => call);
      expect(quietEvents).toMatchObject([{ type: 'l2' }]);
      stopQuiet();
      stopCounting();
      expect(telemetryOn()).toBe(false);
    } finally {
      Object.assign(sink, saved);
    }
  });
});
