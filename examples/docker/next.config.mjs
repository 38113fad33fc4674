import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { withCachekit } from 'cachekit-next/config';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));

/** @type {import('next').NextConfig} */
const config = {
  // .next/standalone: server.js and the node_modules it needs; the image copies only that, plus static and public.
  output: 'standalone',
  // The repository's e2e tests build into a directory and with a build id of their own; your app needs neither.
  distDir: process.env.NEXT_DIST_DIR || '.next',
  generateBuildId: process.env.E2E_BUILD_ID ? async () => process.env.E2E_BUILD_ID : undefined,
  turbopack: { root: here },
  outputFileTracingRoot: here,
};

// The zero-config setup, for comparison (EXAMPLE_SETUP=env at build): the handlers by hand, the store from
// CACHEKIT_REDIS_URL where the server runs, the namespace from package.json.
const zeroConfig = () => ({
  ...config,
  cacheHandler: require.resolve('cachekit-next/handler'),
  cacheHandlers: { default: require.resolve('cachekit-next/use-cache'), remote: require.resolve('cachekit-next/use-cache') },
  cacheMaxMemorySize: 0,
});

// The setup of this example: withCachekit, whose options are built into the standalone folder (server.js never reads
// next.config). REDIS_HOST is read here, at build time only. A password only where the server runs: leave `url` out
// and set CACHEKIT_REDIS_URL there (withCachekit refuses to build a secret into the image).
export default process.env.EXAMPLE_SETUP === 'env'
  ? zeroConfig()
  : withCachekit(config, {
      backend: { type: 'redis', url: `redis://${process.env.REDIS_HOST ?? 'redis:6379'}` },
      namespace: 'shop',
    });
