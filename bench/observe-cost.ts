/**
 * What metrics and tracing cost on the hot path: handler-level `get` of a 20 KB APP_PAGE entry, from the L1 and from
 * Redis (`l1: false`), concurrency 1, in four modes: nothing listening (what an app without metrics or a tracer runs),
 * prom-client metrics registered, an OpenTelemetry tracer provider registered (batch processor, spans dropped by the
 * exporter), and both. Rounds interleave the modes (order rotates); the median round is reported, and each mode as a
 * percentage of "off".
 *
 *   node bench/run.mjs observe-cost
 */
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { Registry } from 'prom-client';
import { RedisBackend } from '../src/backends/redis.js';
import { registerMetrics } from '../src/observe/prometheus.js';
import { disableTracing, enableTracing } from '../src/observe/tracing.js';
import { startRedis } from '../test/support/servers.js';
import { createOurs } from './ours.js';
import { formatNumber, loadAverage, loadLine, machineLine, makePage, markdownTable, median, opsPerSecond, quietTeardown, settle } from './support.js';

const ROUNDS = 7;
const MS = 400;
const KEY = '/blog/a-realistic-post';
const TAGS = '_N_T_/layout,_N_T_/blog/layout,_N_T_/blog/[slug]/page,posts';
const GET_CTX = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false };

/** The process-wide telemetry sink, to switch the registered metrics listener off and on between modes. */
const sink = (globalThis as unknown as Record<symbol, { active: boolean; listeners: unknown[] }>)[Symbol.for('cachekit-next.telemetry')];

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
  const l1 = await createOurs(backend);
  const l2 = await createOurs(backend, { l1: false });
  await l1.handler.set(KEY, value, { cacheControl: { revalidate: 3600, expire: 86_400 } });

  await registerMetrics({ registry: new Registry() });
  const metricsListeners = sink!.listeners;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(dropAll)] });
  // Without a registered provider (as in an app without OpenTelemetry) nothing is installed; with one, spans are made.
  const untraced = () => {
    trace.disable();
    disableTracing();
  };
  const traced = async () => {
    trace.setGlobalTracerProvider(provider);
    if (!(await enableTracing())) throw new Error('tracing did not start');
  };

  const modes = {
    off: async () => {
      sink!.listeners = [];
      sink!.active = false;
      untraced();
    },
    metrics: async () => {
      sink!.listeners = metricsListeners;
      sink!.active = true;
      untraced();
    },
    tracing: async () => {
      sink!.listeners = [];
      sink!.active = false;
      await traced();
    },
    'metrics + tracing': async () => {
      sink!.listeners = metricsListeners;
      sink!.active = true;
      await traced();
    },
  };
  const names = Object.keys(modes) as (keyof typeof modes)[];
  const loads: number[] = [];
  const rows: string[][] = [];
  for (const [label, ours] of [
    ['L1 hit', l1],
    ['L2 hit (Redis)', l2],
  ] as const) {
    const results = new Map<string, number[]>(names.map((n) => [n, []]));
    const read = async () => {
      const got = await ours.request().get(KEY, { ...GET_CTX });
      if (!got) throw new Error(`${label}: miss during the timed loop`);
    };
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
    const off = median(results.get('off')!);
    for (const name of names) {
      const ops = median(results.get(name)!);
      rows.push([label, name, formatNumber(ops, 0), `${formatNumber((ops / off) * 100, 1)} %`, `${formatNumber(1e6 / ops, 2)} µs`]);
    }
  }
  await modes.off();
  console.log('## observe-cost: handler get of a 20 KB page, concurrency 1 (median of %d interleaved rounds)\n', ROUNDS);
  console.log(machineLine());
  console.log(loadLine(loads));
  console.log();
  console.log(markdownTable(['read', 'mode', 'ops/s', 'vs off', 'per get'], rows));
  await l1.stack.close();
  await l2.stack.close();
  await backend.close();
  await redis.stop();
}

await main();
