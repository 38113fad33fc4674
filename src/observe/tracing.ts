/**
 * OpenTelemetry spans for handler calls, loader calls and L2 operations, through `@opentelemetry/api` (an optional peer
 * dependency, imported lazily). Spans are children only: they start under the active span when it is recording, so they
 * nest under Next's own request spans when the app registers a tracer provider (`@vercel/otel` or the SDK, in
 * instrumentation.ts), and a request the sampler dropped pays one check. Nothing is installed until a provider is
 * registered: without one, the hot path pays one boolean check.
 *
 * A lookup the L1 answers takes a microsecond or two; a span of its own would cost the SDK several more (bench
 * observe-cost). So by default a get or loader call whose entry the L1 holds makes no span: its outcome becomes a
 * `cachekit.lookup` event on the span around it (Next's). `CACHEKIT_TRACE_L1_HITS=1` or
 * `enableTracing({ l1HitSpans: true })` gives every lookup its span.
 */
import type { Span } from '@opentelemetry/api';
import { assertKnownOptions, ConfigError } from '../shared/options.js';
import { processEnv, traceL1HitsFromEnv } from '../shared/env.js';
import { warnRateLimited } from '../shared/log.js';
import { setTracer, type SpanAttributes, type SpanRunner } from '../shared/telemetry.js';
import { singleton } from '../shared/registry.js';

type OtelApi = typeof import('@opentelemetry/api');

/** Where @opentelemetry/api 1.x keeps what `trace.setGlobalTracerProvider` registered (shared by every copy of it). */
const OTEL_GLOBAL = Symbol.for('opentelemetry.js.api.1');
interface TracingState {
  api: OtelApi | null | undefined;
  loading: Promise<OtelApi | null> | undefined;
  installed: boolean;
  /** Set by disableTracing(): no tracing until enableTracing(), whatever the app registers. */
  off: boolean;
  /** Spans for lookups the L1 answers too: `enableTracing({ l1HitSpans })`, else CACHEKIT_TRACE_L1_HITS. */
  l1HitSpans: boolean | undefined;
}
const state: TracingState = singleton(
  'tracing',
  (): TracingState => ({ api: undefined, loading: undefined, installed: false, off: false, l1HitSpans: undefined }),
);

export interface TracingOptions {
  /**
   * A span for every lookup, also those the L1 answers (each costs the tracing SDK several µs). Without it, such a
   * lookup is a `cachekit.lookup` event on the enclosing span. @default `CACHEKIT_TRACE_L1_HITS=1`, else false
   */
  l1HitSpans?: boolean;
}

/** CACHEKIT_TRACE_L1_HITS; a value other than 1, true, 0 or false is named in a warning and ignored. */
function l1HitSpansFromEnv(): boolean {
  const env = processEnv();
  const on = traceL1HitsFromEnv(env);
  if (on !== undefined) return on;
  warnRateLimited('tracing:env', `[cachekit] CACHEKIT_TRACE_L1_HITS must be 1, true, 0 or false, got ${JSON.stringify(env.CACHEKIT_TRACE_L1_HITS)}: ignored`);
  return false;
}

/** Whether an app registered a global tracer provider (cheap: one property read). */
function providerRegistered(): boolean {
  return Boolean((globalThis as { [OTEL_GLOBAL]?: { trace?: unknown } })[OTEL_GLOBAL]?.trace);
}

function loadApi(): Promise<OtelApi | null> {
  state.loading ??= import('@opentelemetry/api').then(
    (api) => (state.api = (api as OtelApi & { default?: OtelApi }).trace ? api : ((api as { default?: OtelApi }).default ?? null)),
    () => (state.api = null),
  );
  return state.loading;
}

/** The span runner over the api: CLIENT spans for L2 calls (they carry db.system.name), INTERNAL for the rest. */
function runnerOf(api: OtelApi): SpanRunner {
  const tracer = api.trace.getTracer('cachekit-next');
  /** The spans this runner made: a lookup inside one annotates it, outside one it adds an event to the app's span. */
  const ours = new WeakSet<Span>();
  const l1HitSpans = (state.l1HitSpans ??= l1HitSpansFromEnv());
  return {
    run(name, attributes, fn, local) {
      if (!providerRegistered()) {
        // The app removed its provider (trace.disable()): back to no tracing.
        state.installed = false;
        setTracer(null);
        return fn();
      }
      // Only under a recorded span (Next's request span, sampled): a request the sampler dropped costs this check.
      if (!api.trace.getActiveSpan()?.isRecording()) return fn();
      // The L1 holds the entry: the lookup is an event on the enclosing span (annotate), not a span of its own.
      if (local !== undefined && !l1HitSpans && local()) return fn();
      const attrs = typeof attributes === 'function' ? attributes() : attributes;
      const kind = 'db.system.name' in attrs ? api.SpanKind.CLIENT : api.SpanKind.INTERNAL;
      return tracer.startActiveSpan(name, { kind, attributes: attrs }, async (span) => {
        ours.add(span);
        try {
          return await fn();
        } catch (error) {
          const errorKind = (error as { kind?: unknown } | null)?.kind;
          span.setAttribute('error.type', typeof errorKind === 'string' ? errorKind : ((error as Error)?.name ?? 'Error'));
          span.setStatus({ code: api.SpanStatusCode.ERROR, message: (error as Error)?.message });
          throw error;
        } finally {
          span.end();
        }
      });
    },
    annotate(attributes: SpanAttributes) {
      const span = api.trace.getActiveSpan();
      if (!span?.isRecording()) return;
      if (ours.has(span)) span.setAttributes(attributes);
      else span.addEvent('cachekit.lookup', attributes);
    },
  };
}

/**
 * Installs the tracer when an app has registered a provider; else nothing (called again later, e.g. per request, it
 * picks up a provider registered since). Cheap when already decided: a few property reads.
 */
export function autoTrace(): void {
  if (state.installed || state.off || state.api === null || !providerRegistered()) return;
  if (state.api) {
    state.installed = true;
    setTracer(runnerOf(state.api));
    return;
  }
  void loadApi().then(() => autoTrace());
}

/**
 * Starts tracing now (awaits the import of @opentelemetry/api): `true` when spans will be recorded, `false` when the
 * api is not installed or no provider is registered yet. Settings given here replace earlier ones.
 */
export async function enableTracing(options: TracingOptions = {}): Promise<boolean> {
  assertKnownOptions('enableTracing', options, ['l1HitSpans']);
  if (options.l1HitSpans !== undefined && typeof options.l1HitSpans !== 'boolean') {
    throw new ConfigError('enableTracing', 'l1HitSpans', `must be a boolean, got ${JSON.stringify(options.l1HitSpans)}`);
  }
  state.off = false;
  state.l1HitSpans = options.l1HitSpans; // undefined: CACHEKIT_TRACE_L1_HITS, read by the new runner
  state.installed = false; // the runner reads the setting once: make a new one
  await loadApi();
  autoTrace();
  return state.installed;
}

/** Stops tracing until `enableTracing()` (tests, or an app turning it off). */
export function disableTracing(): void {
  state.off = true;
  state.installed = false;
  setTracer(null);
}
