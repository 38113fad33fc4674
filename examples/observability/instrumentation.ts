/**
 * Runs once per server process, before it serves. Registers cachekit's Prometheus metrics (counting from the start,
 * not from the first scrape) and, with CACHEKIT_DEMO_TRACES=memory, an OpenTelemetry tracer provider keeping spans in
 * memory for app/api/test/spans (the repository's e2e test reads them there). In production, register
 * `@vercel/otel` or the OpenTelemetry SDK with an OTLP exporter here instead: cachekit's spans then nest under Next's.
 */
export async function register() {
  if (process.env.NEXT_RUNTIME !== 'nodejs') return;
  const { registerMetrics } = await import('cachekit-next/metrics');
  await registerMetrics();
  if (process.env.CACHEKIT_DEMO_TRACES === 'memory') {
    const { context, trace } = await import('@opentelemetry/api');
    const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks');
    const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = await import('@opentelemetry/sdk-trace-base');
    const exporter = new InMemorySpanExporter();
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
    (globalThis as { __demoSpans?: unknown }).__demoSpans = exporter;
  }
}
