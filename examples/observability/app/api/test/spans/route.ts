import type { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';

export const dynamic = 'force-dynamic';

/** The spans recorded so far (CACHEKIT_DEMO_TRACES=memory only): what the e2e test checks. */
export async function GET() {
  const exporter = (globalThis as { __demoSpans?: InMemorySpanExporter }).__demoSpans;
  if (!exporter) return Response.json({ error: 'set CACHEKIT_DEMO_TRACES=memory' }, { status: 404 });
  return Response.json(
    exporter.getFinishedSpans().map((span) => ({
      name: span.name,
      traceId: span.spanContext().traceId,
      spanId: span.spanContext().spanId,
      parentSpanId: span.parentSpanContext?.spanId ?? null,
      kind: span.kind,
      attributes: span.attributes,
      events: span.events.map((event) => ({ name: event.name, attributes: event.attributes ?? {} })),
    })),
  );
}
