/**
 * Ready Next.js route handlers (App Router):
 *
 *   // app/api/cachekit/metrics/route.ts
 *   export { GET } from 'cachekit-next/metrics';
 *   // app/api/cachekit/health/route.ts
 *   export { GET } from 'cachekit-next/health';
 */
import { stats } from './collector.js';
import { healthCheck, type HealthOptions } from './health.js';
import { MissingPeerError, registerMetrics, servedRegistry, type MetricsOptions } from './prometheus.js';

const NO_STORE = { 'cache-control': 'no-store' };

const json = (body: unknown, status: number) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...NO_STORE } });

/**
 * A metrics route: the Prometheus text format (prom-client), or `?format=json` for `stats()`. Without prom-client it
 * answers 501 with the stats object.
 */
export function createMetricsRoute(options: MetricsOptions = {}): { GET(request?: Request): Promise<Response> } {
  return {
    async GET(request?: Request): Promise<Response> {
      if (request && new URL(request.url).searchParams.get('format') === 'json') return json(stats(), 200);
      try {
        const registry = options.registry ? await registerMetrics(options) : await servedRegistry();
        return new Response(await registry.metrics(), { status: 200, headers: { 'content-type': registry.contentType, ...NO_STORE } });
      } catch (error) {
        if (error instanceof MissingPeerError) return json({ error: error.message, stats: stats() }, 501);
        throw error;
      }
    },
  };
}

export interface HealthRouteOptions extends HealthOptions {
  /** The status answered when degraded (L2 down, breaker open, subscription down): 200 keeps the instance in rotation. @default 200 */
  degradedStatus?: number;
}

/** A health route for readiness probes: 200 when ok (and by default when degraded), 503 when unavailable. */
export function createHealthRoute(options: HealthRouteOptions = {}): { GET(request?: Request): Promise<Response> } {
  const { degradedStatus = 200, ...check } = options;
  return {
    async GET(): Promise<Response> {
      const report = await healthCheck(check);
      return json(report, report.status === 'ok' ? 200 : report.status === 'degraded' ? degradedStatus : 503);
    },
  };
}
