/**
 * `cachekit-next/health`: `healthCheck()` of the whole stack, and the ready route handler for readiness probes:
 *
 *   // app/api/cachekit/health/route.ts
 *   export { GET } from 'cachekit-next/health';
 *   // or, to take the instance out of rotation while the L2 is down:
 *   export const { GET } = createHealthRoute({ degradedStatus: 503 });
 */
import { createHealthRoute } from './observe/routes.js';

export { createHealthRoute, type HealthRouteOptions } from './observe/routes.js';
export { healthCheck, type HealthOptions, type HealthReport } from './observe/health.js';

/** Answers 200 (ok or degraded) or 503 (no cache), with the report as JSON. */
export const GET = createHealthRoute().GET;
