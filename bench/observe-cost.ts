/**
 * What metrics and tracing cost on the hot path: handler-level `get` of a 20 KB APP_PAGE entry, from the L1 and from
 * Redis (`l1: false`), concurrency 1, each inside a request span as Next makes one. Modes: nothing listening and no
 * tracer provider (what an app without metrics or OpenTelemetry runs), prom-client metrics registered, a provider
 * whose sampler drops the request (its span does not record: ours are not made), a provider recording every request
 * (batch processor, spans dropped by the exporter: the request span is then recorded too, so that mode includes
 * Next's own span), and metrics with recorded tracing. Rounds interleave the modes (order rotates); the median round
 * is reported, and each mode as a percentage of its reference (the same setting without cachekit's part).
 *
 *   node bench/run.mjs observe-cost
 */
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { AlwaysOffSampler, BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { Registry } from 'prom-client';
import { RedisBackend } from '../src/backends/redis.js';
import { registerMetrics } from '../src/observe/prometheus.js';
import { disableTracing, enableTracing } from '../src/observe/tracing.js';
import { singleton } from '../src/shared/registry.js';
import { startRedis } from '../test/support/servers.js';
import { createOurs } from './ours.js';
import { formatNumber, loadAverage, loadLine, machineLine, makePage, markdownTable, median, opsPerSecond, quietTeardown, settle } from './support.js';

const ROUNDS = 9;
const MS = 300;
const KEY = '/blog/a-realistic-post';
const TAGS = '_N_T_/layout,_N_T_/blog/layout,_N_T_/blog/[slug]/page,posts';
const GET_CTX = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false };

/** The process-wide telemetry sink, to switch the registered metrics listener off and on between modes. */
type Sink = { active: boolean; lookups: boolean; listeners: unknown[]; quiet: unknown[]; counters: unknown[]; tracer: unknown };
const sink = singleton('telemetry', (): Sink => ({ active: false, lookups: false, listeners: [], quiet: [], counters: [], tracer: null }));

const dropAll: SpanExporter = { export: (_spans, done) => done({ code: 0 }), shutdown: async () => {} };

async function main(): Promise<void> {
  quietTeardown();
  const redis = await startRedis();
  const backend = new RedisBackend({ url: redis.url });
  const page = makePage(20 * 1024);
  const value = {
    kind: 'APP_PAGE',
    html: page.html,
    rscData: page.rscData,
    headers: { 'x-next-cache-tags': TAGS, 'content-type': 'text/html; charset=utf-8' },
    status: 200,
  };
  // mergeRequests off: what tracing adds to the handler's own work, without the event-loop turn of the default.
  const l1 = await createOurs(backend, { mergeRequests: false });
  const l2 = await createOurs(backend, { l1: false });
  await l1.handler.set(KEY, value, { cacheControl: { revalidate: 3600, expire: 86_400 } });

  await registerMetrics({ registry: new Registry() });
  const registered = { listeners: sink.listeners, quiet: sink.quiet, counters: sink.counters };
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const recording = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(dropAll)] });
  const sampledOut = new BasicTracerProvider({ sampler: new AlwaysOffSampler(), spanProcessors: [new BatchSpanProcessor(dropAll)] });
  // Metrics on or off: the registered listeners and lookup counters, or none (the flags as telemetry.ts sets them).
  const listen = (on: boolean) => {
    Object.assign(sink, on ? registered : { listeners: [], quiet: [], counters: [] });
    sink.active = sink.listeners.length > 0 || sink.quiet.length > 0;
    sink.lookups = sink.listeners.length > 0 || sink.counters.length > 0 || sink.tracer !== null;
  };
  // Without a registered provider (an app without OpenTelemetry) nothing is installed; with one, spans are made.
  const untraced = () => {
    trace.disable();
    disableTracing();
  };
  const traced = async (provider: BasicTracerProvider, l1HitSpans = false) => {
    trace.disable();
    trace.setGlobalTracerProvider(provider);
    if (!(await enableTracing({ l1HitSpans }))) throw new Error('tracing did not start');
  };
  // Each cachekit mode beside its reference: the same provider (the request span costs what it costs) without cachekit's part.
  const modes = {
    off: async () => {
      listen(false);
      untraced();
    },
    metrics: async () => {
      listen(true);
      untraced();
    },
    'provider, request sampled out; cachekit tracing off': async () => {
      listen(false);
      await traced(sampledOut);
      disableTracing();
    },
    'provider, request sampled out': async () => {
      listen(false);
      await traced(sampledOut);
    },
    'provider, request recorded; cachekit tracing off': async () => {
      listen(false);
      await traced(recording);
      disableTracing();
    },
    'provider, request recorded': async () => {
      listen(false);
      await traced(recording);
    },
    // enableTracing({ l1HitSpans: true }) / CACHEKIT_TRACE_L1_HITS=1: a span for every lookup, L1 hits included.
    'provider, request recorded; l1HitSpans': async () => {
      listen(false);
      await traced(recording, true);
    },
  };
  /** The reference each mode is compared with. */
  const reference: Record<string, string> = {
    off: 'off',
    metrics: 'off',
    'provider, request sampled out; cachekit tracing off': 'provider, request sampled out; cachekit tracing off',
    'provider, request sampled out': 'provider, request sampled out; cachekit tracing off',
    'provider, request recorded; cachekit tracing off': 'provider, request recorded; cachekit tracing off',
    'provider, request recorded': 'provider, request recorded; cachekit tracing off',
    'provider, request recorded; l1HitSpans': 'provider, request recorded; cachekit tracing off',
  };
  const names = Object.keys(modes) as (keyof typeof modes)[];
  const loads: number[] = [];
  const rows: string[][] = [];
  for (const [label, ours] of [
    ['L1 hit', l1],
    ['L2 hit (Redis)', l2],
  ] as const) {
    const results = new Map<string, number[]>(names.map((n) => [n, []]));
    // As in Next: the handler is constructed and called inside the request's span (a no-op span without a provider).
    const read = () =>
      trace.getTracer('next.js').startActiveSpan('GET /blog/[slug]', async (span) => {
        const got = await ours.request().get(KEY, { ...GET_CTX });
        span.end();
        if (!got) throw new Error(`${label}: miss during the timed loop`);
      });
    for (let i = 0; i < 200; i++) await read(); // warm up
    for (let round = 0; round < ROUNDS; round++) {
      loads.push(loadAverage());
      for (let i = 0; i < names.length; i++) {
        const name = names[(round + i) % names.length]!;
        await modes[name]();
        await settle({ gc: true });
        results.get(name)!.push(await opsPerSecond(read, MS));
      }
    }
    for (const name of names) {
      const ops = median(results.get(name)!);
      const base = median(results.get(reference[name]!)!);
      rows.push([
        label,
        name,
        formatNumber(ops, 0),
        `${formatNumber(1e6 / ops, 2)} µs`,
        `${formatNumber((ops / base) * 100, 1)} %`,
        `${formatNumber(1e6 / ops - 1e6 / base, 2)} µs`,
      ]);
    }
  }
  await modes.off();
  console.log('## observe-cost: handler get of a 20 KB page, concurrency 1 (median of %d interleaved rounds)\n', ROUNDS);
  console.log(machineLine());
  console.log(loadLine(loads));
  console.log();
  console.log(markdownTable(['read', 'mode', 'ops/s', 'per get', 'vs its reference', 'added per get'], rows));
  await l1.stack.close();
  await l2.stack.close();
  await backend.close();
  await redis.stop();
}

await main();
