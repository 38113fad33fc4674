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

// Sets cacheHandler, cacheHandlers, cacheMaxMemorySize: 0 and serverExternalPackages. Every `next build` worker
// and every `next start` process then keeps ISR pages, route handlers, the fetch cache and cache(fn) entries
// on these memcached servers.
export default withCachekit(config, {
  backend: { type: 'memcached', servers: (process.env.MEMCACHED_SERVERS ?? '127.0.0.1:11211').split(',') },
});
