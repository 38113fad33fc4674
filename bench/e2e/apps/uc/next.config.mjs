import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));

// One build serves every contender: `next start` reads this file again, and BENCH_HANDLER picks the handlers, wired as
// each package's README says. Unset (the build, and the "next" contender): Next's built-in handlers.
const useCache = require.resolve('cachekit-next/use-cache');
const triebUseCache = path.join(here, 'trieb-use-cache.cjs');
const handlers = {
  cachekit: { cacheHandlers: { default: useCache, remote: useCache }, cacheHandler: require.resolve('cachekit-next/handler'), cacheMaxMemorySize: 0 },
  trieb: {
    cacheHandlers: { default: triebUseCache, remote: triebUseCache },
    cacheHandler: require.resolve('@trieb.work/nextjs-turbo-redis-cache'),
    cacheMaxMemorySize: 0,
  },
};

/** @type {import('next').NextConfig} */
export default {
  cacheComponents: true,
  ...handlers[process.env.BENCH_HANDLER ?? ''],
  distDir: process.env.NEXT_DIST_DIR || '.next',
  generateBuildId: async () => 'bench-uc',
  turbopack: { root: here },
  outputFileTracingRoot: here,
};
