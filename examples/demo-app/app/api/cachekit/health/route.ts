// The health of the whole cache stack, for readiness probes: 200 (ok or degraded), 503 without a cache.
export { GET } from 'cachekit-next/health';
