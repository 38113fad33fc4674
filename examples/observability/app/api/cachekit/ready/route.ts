import { createHealthRoute } from 'cachekit-next/health';

// A readiness probe that takes the instance out of rotation while its L2 is degraded.
const route = createHealthRoute({ degradedStatus: 503 });
export const GET = route.GET;
