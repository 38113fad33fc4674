/**
 * `cachekit-next/metrics`: Prometheus metrics (prom-client, optional), `stats()` (no dependency), OpenTelemetry tracing
 * (@opentelemetry/api, optional), and the ready route handler:
 *
 *   // app/api/cachekit/metrics/route.ts
 *   export { GET } from 'cachekit-next/metrics';
 */
import { createMetricsRoute } from './observe/routes.js';

export { createMetricsRoute } from './observe/routes.js';
export { registerMetrics, type MetricsOptions } from './observe/prometheus.js';
export { stats, type CachekitStats } from './observe/collector.js';
export { enableTracing, disableTracing } from './observe/tracing.js';

/** The metrics route over prom-client's default registry (or the first one passed to `registerMetrics`). */
export const GET = createMetricsRoute().GET;
