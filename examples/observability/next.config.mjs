import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { withCachekit } from 'cachekit-next/config';

const here = path.dirname(fileURLToPath(import.meta.url));

/** @type {import('next').NextConfig} */
const config = {
  // The repository's e2e tests build into a directory and with a build id of their own; your app needs neither.
  distDir: process.env.NEXT_DIST_DIR || '.next',
  generateBuildId: process.env.E2E_BUILD_ID ? async () => process.env.E2E_BUILD_ID : undefined,
  turbopack: { root: here },
  outputFileTracingRoot: here,
};

// Redis behind the L1. A short deadline and a quick breaker, so an outage shows on the dashboard within seconds.
export default withCachekit(config, {
  backend: { type: 'redis', url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' },
  timeoutMs: 500,
  breaker: { failureThreshold: 3, cooldownMs: 1000 },
});
