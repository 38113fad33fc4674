import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { withCachekit } from 'cachekit-next/config';

const here = path.dirname(fileURLToPath(import.meta.url));

/** @type {import('next').NextConfig} */
const config = {
  // The repository's e2e tests may build into a directory and with a build id of their own; your app needs neither.
  distDir: process.env.NEXT_DIST_DIR || '.next',
  generateBuildId: process.env.E2E_BUILD_ID ? async () => process.env.E2E_BUILD_ID : undefined,
  // The package is installed from a tarball inside this directory: this app is its own root.
  turbopack: { root: here },
  outputFileTracingRoot: here,
};

// No backend option: the environment decides (CACHEKIT_REDIS_URL, REDIS_URL, CACHEKIT_MEMCACHED_SERVERS, ...), and
// with nothing set the embedded File backend under .next/cache/cachekit. The cache(fn) loaders use that same store.
export default withCachekit(config);
