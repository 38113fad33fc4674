import { expect, test } from '@playwright/test';
import { startRedis } from '../test/support/servers.js';
import { execFileSync } from 'node:child_process';
import { OBSERVABILITY_APP, startPrometheus, withRateInterval, type Prometheus } from '../scripts/prometheus.mjs';
import { buildApp, installApp, startDataServer, startNext, type NextServer } from './support/apps.js';
import { dashboardTargets, evaluatePanel, values } from './support/dashboard.js';

// examples/observability built once and served by `next start` on a real Redis, with load from the test: its metrics
// route moves as the requests dictate (hits, misses, a revalidation, errors and the breaker while Redis is stopped),
// its health routes turn degraded (200) and not ready (503) while Redis is down and back after, and its spans
// (an in-memory exporter registered in instrumentation.ts) nest under Next's request spans. A real Prometheus scrapes
// it and a peer instance all along, and answers every panel query of the Grafana dashboard from what the load did.
test.describe.configure({ mode: 'serial' });

const APP = 'observability';
let redis: Awaited<ReturnType<typeof startRedis>>;
let data: Awaited<ReturnType<typeof startDataServer>>;
let server: NextServer;
/** A second instance on the same Redis with a small L1: it receives the first one's invalidations and evicts. */
let peer: NextServer;
let prom: Prometheus;
const targets = dashboardTargets();
const panel = (title: string, refId = 'A') => {
  const found = targets.find((t) => t.panel.startsWith(title) && t.refId === refId);
  if (!found) throw new Error(`the dashboard has no panel "${title}…" with a target ${refId}`);
  return found;
};
/**
 * Grafana's `$__rate_interval` (at least 4 scrape intervals) suits a graph of many points; these checks ask one instant
 * query for what the whole run did, so the window spans from Prometheus's start to the evaluation time.
 */
const runWindow = () => `${Math.ceil((Date.now() - prom.startedAt) / 1000) + 5}s`;

/** `name{labels} value` lines of the Prometheus text format, as one number per series (0 when absent). */
async function scrape(): Promise<(name: string, labels?: Record<string, string>) => number> {
  const res = await fetch(`${server.url}/api/cachekit/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  const text = await res.text();
  const series = text
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const m = /^([a-zA-Z0-9_:]+)(?:\{(.*)\})? (\S+)$/.exec(line)!;
      const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
      return { name: m[1]!, labels, value: Number(m[3]) };
    });
  return (name, labels = {}) =>
    series.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
}

const get = async (path: string) => {
  const res = await fetch(`${server.url}${path}`);
  await res.arrayBuffer();
  return res.status;
};

test.beforeAll(async () => {
  test.setTimeout(300_000);
  await installApp(APP);
  redis = await startRedis();
  data = await startDataServer();
  const env = { REDIS_URL: redis.url, UPSTREAM_URL: data.url };
  await buildApp(APP, { distDir: '.next-e2e-obs', buildId: 'e2e-obs', env });
  server = await startNext(APP, { distDir: '.next-e2e-obs', env: { ...env, CACHEKIT_DEMO_TRACES: 'memory' } });
  peer = await startNext(APP, { distDir: '.next-e2e-obs', env: { ...env, CACHEKIT_L1_MAX_SIZE_MB: '0.05' } });
  prom = await startPrometheus(
    [server, peer].map((s) => `127.0.0.1:${s.port}`),
    { scrapeIntervalS: 1 },
  );
  await prom.scrapedAfter();
});

test.afterAll(async () => {
  await prom?.stop();
  await peer?.stop();
  await server?.stop();
  await data?.stop();
  await redis?.stop();
});

test('the metrics route counts misses, L1 and L2 hits and a revalidation as the requests dictate', async () => {
  let m = await scrape();
  const page = (layer: string, outcome: string) => m('cachekit_lookups_total', { kind: 'page', layer, outcome, backend: 'redis' });
  const before = { miss: page('none', 'miss'), l1: page('l1', 'hit'), revalidations: m('cachekit_revalidations_total', { profile: 'hard' }) };

  expect(await get('/items/a1')).toBe(200); // never rendered: a miss, rendered and stored
  m = await scrape();
  expect(page('none', 'miss') - before.miss).toBe(1);
  // Its fetch was stored by `next build` (the home page made it): found in Redis, this process's L1 being empty.
  expect(m('cachekit_lookups_total', { kind: 'fetch', layer: 'l2', outcome: 'hit' })).toBeGreaterThanOrEqual(1);
  expect(m('cachekit_lookups_total', { kind: 'loader', outcome: 'miss' })).toBeGreaterThanOrEqual(1);
  expect(m('cachekit_l2_written_bytes_total', { backend: 'redis', operation: 'set' })).toBeGreaterThan(0);

  for (let i = 0; i < 3; i++) expect(await get('/items/a1')).toBe(200); // from this process's L1
  m = await scrape();
  expect(page('l1', 'hit') - before.l1).toBe(3);
  expect(page('none', 'miss') - before.miss).toBe(1);
  expect(m('cachekit_l2_operation_duration_seconds_count', { backend: 'redis', operation: 'get', outcome: 'ok' })).toBeGreaterThan(0);

  const res = await fetch(`${server.url}/api/revalidate`, { method: 'POST' });
  expect(res.status).toBe(200);
  m = await scrape();
  // Next hands one revalidateTag to both interfaces (cacheHandler, and cacheHandlers for 'use cache'): each marks it.
  expect(m('cachekit_revalidations_total', { profile: 'hard' }) - before.revalidations).toBe(2);
  expect(m('cachekit_invalidation_messages_total', { direction: 'sent' })).toBeGreaterThanOrEqual(1);
  expect(m('cachekit_l2_operation_duration_seconds_count', { backend: 'redis', operation: 'tag_write', outcome: 'ok' })).toBeGreaterThanOrEqual(1);
  // No key, tag or path ever becomes a label.
  const text = await (await fetch(`${server.url}/api/cachekit/metrics`)).text();
  expect(text).not.toMatch(/a1|items|upstream/);
});

test('while Redis is stopped: errors by kind, the breaker opens, health is degraded and not ready; all back after', async () => {
  const health = async (path: string) => {
    const res = await fetch(`${server.url}${path}`);
    return { status: res.status, body: (await res.json()) as { status: string; degraded: boolean; breaker: string; l2: { healthy: boolean } } };
  };
  expect(await health('/api/cachekit/health')).toMatchObject({
    status: 200,
    body: { status: 'ok', degraded: false, breaker: 'closed', l2: { healthy: true } },
  });
  expect((await health('/api/cachekit/ready')).status).toBe(200);
  let m = await scrape();
  const opened = m('cachekit_breaker_transitions_total', { backend: 'redis', to: 'open' });
  const closed = m('cachekit_breaker_transitions_total', { backend: 'redis', to: 'closed' });

  const port = redis.port;
  await redis.stop();
  // The site still serves: misses render anew, never an error page.
  for (let i = 0; i < 4; i++) expect(await get(`/items/down-${i}`)).toBe(200);
  m = await scrape();
  expect(m('cachekit_l2_errors_total', { backend: 'redis', error_kind: 'transient' })).toBeGreaterThan(0);
  expect(m('cachekit_breaker_transitions_total', { backend: 'redis', to: 'open' }) - opened).toBeGreaterThanOrEqual(1);
  expect(m('cachekit_breaker_state', { backend: 'redis' })).toBe(2);
  const degraded = await health('/api/cachekit/health');
  expect(degraded).toMatchObject({ status: 200, body: { status: 'degraded', degraded: true, l2: { healthy: false } } });
  expect((await health('/api/cachekit/ready')).status).toBe(503);
  // Prometheus sees the outage through the dashboard's own queries: the breaker panel answers 2 (open) and the errors
  // panel a positive rate, while requests keep coming (each after the cooldown probes the stopped store and fails).
  await expect
    .poll(
      async () => {
        await get('/items/down-more');
        const breaker = await prom.query(panel('Circuit breaker state').expr);
        const errors = await prom.query(withRateInterval(panel('L2 errors by kind').expr, runWindow()));
        return { breaker: values(breaker, { backend: 'redis' }), errors: values(errors, { backend: 'redis', error_kind: 'transient' })[0]! > 0 };
      },
      { timeout: 20_000 },
    )
    .toEqual({ breaker: [2], errors: true });

  redis = await startRedis({ port });
  // After the cooldown one request probes the store; its success closes the circuit.
  await expect
    .poll(
      async () => {
        await get('/items/a1');
        return (await scrape())('cachekit_breaker_state', { backend: 'redis' });
      },
      { timeout: 20_000 },
    )
    .toBe(0);
  m = await scrape();
  expect(m('cachekit_breaker_transitions_total', { backend: 'redis', to: 'closed' }) - closed).toBeGreaterThanOrEqual(1);
  await expect.poll(async () => JSON.stringify((await health('/api/cachekit/health')).body), { timeout: 10_000 }).toContain('"status":"ok"');
  expect((await health('/api/cachekit/ready')).status).toBe(200);
});

test('spans nest under Next.js request spans, with the documented attributes and no key content', async () => {
  expect(await get('/items/traced')).toBe(200);
  expect(await get('/items/traced')).toBe(200);
  const spans = (await (await fetch(`${server.url}/api/test/spans`)).json()) as {
    name: string;
    traceId: string;
    spanId: string;
    parentSpanId: string | null;
    kind: number;
    attributes: Record<string, unknown>;
    events: { name: string; attributes: Record<string, unknown> }[];
  }[];
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const root = (span: (typeof spans)[number]) => {
    let current = span;
    while (current.parentSpanId && byId.has(current.parentSpanId)) current = byId.get(current.parentSpanId)!;
    return current;
  };
  const gets = spans.filter((s) => s.name === 'cachekit.get' && s.attributes['cachekit.kind'] === 'page');
  expect(gets.length).toBeGreaterThan(0);
  for (const span of gets) {
    // Next's request span (BaseServer.handleRequest: "GET /items/[id]") is the root of the trace.
    expect(root(span).name).toMatch(/^GET \//);
    expect(root(span).attributes['next.span_type']).toBe('BaseServer.handleRequest');
    expect(span.attributes['cachekit.key_hash']).toMatch(/^[0-9a-f]{16}$/);
  }
  // A lookup the L1 answers makes no span (it would cost the SDK more than the hit): an event on Next's span.
  const l1Hits = spans.flatMap((s) => s.events.filter((e) => e.name === 'cachekit.lookup').map((e) => ({ span: s, ...e })));
  expect(l1Hits.some((e) => e.attributes['cachekit.kind'] === 'page' && e.attributes['cachekit.layer'] === 'l1' && e.attributes['cachekit.hit'] === true)).toBe(
    true,
  );
  for (const { span } of l1Hits) expect(root(span).attributes['next.span_type']).toBe('BaseServer.handleRequest');
  const l2 = spans.filter((s) => s.attributes['db.system.name'] === 'redis');
  expect(l2.length).toBeGreaterThan(0);
  // CLIENT spans in the request's trace: under a cachekit span, or (a tag's state read for an L1 hit) under Next's.
  expect(l2.every((s) => s.kind === 2 && root(s).attributes['next.span_type'] === 'BaseServer.handleRequest')).toBe(true);
  expect(l2.some((s) => byId.get(s.parentSpanId!)?.name.startsWith('cachekit.'))).toBe(true);
  expect(spans.some((s) => s.name === 'cachekit.loader')).toBe(true);
  const ours = spans.filter((s) => s.name.startsWith('cachekit.') || s.attributes['db.system.name']);
  expect(JSON.stringify([...ours.map((s) => s.attributes), ...l1Hits.map((e) => e.attributes)])).not.toMatch(/traced|items|upstream/);
});

test('Prometheus answers every panel query of the Grafana dashboard with what the load did', async () => {
  execFileSync('promtool', ['check', 'config', `${OBSERVABILITY_APP}/prometheus.yml`], { stdio: 'pipe' });
  execFileSync('promtool', ['check', 'config', prom.configFile], { stdio: 'pipe' });

  // One more round of the load once Prometheus has the series the earlier tests created: a labelled counter's first
  // sample is rate()'s baseline (prom-client creates the series on its first increment), so increases come after.
  await prom.scrapedAfter();
  for (const url of [server.url, peer.url]) {
    for (let i = 0; i < 12; i++) expect((await fetch(`${url}/items/round-${i}`)).status).toBe(200); // misses; evictions on the peer
    for (let i = 0; i < 3; i++) expect((await fetch(`${url}/items/round-0`)).status).toBe(200);
  }
  await prom.scrapedAfter();
  expect((await fetch(`${server.url}/api/revalidate`, { method: 'POST' })).status).toBe(200); // the peer receives it: lag
  for (let i = 12; i < 24; i++) expect((await fetch(`${peer.url}/items/round-${i}`)).status).toBe(200);
  await prom.scrapedAfter();

  const window = runWindow();
  const results = new Map<string, Awaited<ReturnType<typeof evaluatePanel>>>();
  for (const target of targets) results.set(`${target.panel} ${target.refId}`, await evaluatePanel(prom, target, window));
  const result = (title: string, refId = 'A') => results.get(`${panel(title, refId).panel} ${refId}`)!;
  for (const [name, r] of results) for (const v of values(r)) expect(Number.isNaN(v), `${name}: NaN`).toBe(false);

  const ratio = values(result('Hit ratio by kind'), { kind: 'page' })[0]!;
  expect(ratio).toBeGreaterThan(0);
  expect(ratio).toBeLessThanOrEqual(1);
  expect(values(result('Lookups by layer'), { layer: 'l1', outcome: 'hit' })[0]).toBeGreaterThan(0);
  expect(values(result('Lookups by layer'), { layer: 'none', outcome: 'miss' })[0]).toBeGreaterThan(0);
  for (const refId of ['A', 'B', 'C']) {
    for (const operation of ['get', 'set']) {
      const [latency] = values(result('L2 latency percentiles', refId), { operation });
      expect(latency, `L2 latency ${refId} ${operation}`).toBeGreaterThan(0);
      expect(Number.isFinite(latency)).toBe(true);
    }
  }
  expect(values(result('L2 errors by kind'), { backend: 'redis', error_kind: 'transient' })[0]).toBeGreaterThan(0);
  expect(values(result('Circuit breaker state'), { backend: 'redis' })).toEqual([0]); // closed again since Redis is back
  for (const refId of ['A', 'B']) expect(Number.isFinite(values(result('Invalidation lag', refId))[0])).toBe(true);
  expect(values(result('L1 bytes by cache')).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  expect(values(result('Revalidations by profile'), { profile: 'hard' })[0]).toBeGreaterThan(0);
  expect(values(result('Revalidations by profile', 'B')).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
});
