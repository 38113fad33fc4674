/**
 * OpenTelemetry spans for handler calls, loader calls and L2 operations, through `@opentelemetry/api` (an optional peer
 * dependency, imported lazily). Spans are children only: they start under the active span when it is recording, so they
 * nest under Next's own request spans when the app registers a tracer provider (`@vercel/otel` or the SDK, in
 * instrumentation.ts), and a request the sampler dropped pays one check. Nothing is installed until a provider is
 * registered: without one, the hot path pays one boolean check.
 */
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
}
const state: TracingState = singleton('tracing', (): TracingState => ({ api: undefined, loading: undefined, installed: false, off: false }));

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
  return {
    run(name, attributes, fn) {
      if (!providerRegistered()) {
        // The app removed its provider (trace.disable()): back to no tracing.
        state.installed = false;
        setTracer(null);
        return fn();
      }
      // Only under a recorded span (Next's request span, sampled): a request the sampler dropped costs this check.
      if (!api.trace.getActiveSpan()?.isRecording()) return fn();
      const attrs = typeof attributes === 'function' ? attributes() : attributes;
      const kind = 'db.system.name' in attrs ? api.SpanKind.CLIENT : api.SpanKind.INTERNAL;
      return tracer.startActiveSpan(name, { kind, attributes: attrs }, async (span) => {
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
      if (span?.isRecording()) span.setAttributes(attributes);
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
 * api is not installed or no provider is registered yet.
 */
export async function enableTracing(): Promise<boolean> {
  state.off = false;
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
