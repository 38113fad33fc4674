// Liveness-style health: 200 while the site serves (with `degraded: true` while Redis is down), 503 without a cache.
export { GET } from 'cachekit-next/health';
