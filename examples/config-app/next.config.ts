import type { NextConfig } from 'next';
import { withCachekit } from 'cachekit-next/config';

const config: NextConfig = {
  distDir: process.env.NEXT_DIST_DIR || '.next',
  generateBuildId: process.env.E2E_BUILD_ID ? async () => process.env.E2E_BUILD_ID! : undefined,
  // `next` runs in the app directory; the package is installed from a tarball inside it.
  turbopack: { root: process.cwd() },
  outputFileTracingRoot: process.cwd(),
  // 'use cache' without cacheComponents, which would forbid the ISR page's `export const revalidate`.
  experimental: { useCache: true },
};

// Sets cacheHandler and cacheHandlers (absolute paths), cacheMaxMemorySize: 0, and carries these options to the
// build workers and to `next start`. The backend is this app's own module.
export default withCachekit(config, {
  backend: './cachekit.backend.mjs',
  namespace: 'config-app-ns',
  l1: { maxSizeMb: 32 },
});
