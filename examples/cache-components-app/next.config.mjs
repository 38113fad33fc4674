import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));

// CACHE_HANDLERS=next at build time: Next's own default handlers, to pin down which behaviour is Next's.
const nextDefaults = process.env.CACHE_HANDLERS === 'next';

// Absolute paths: `next build` resolves relative ones against the project, `next start` against .next/.
const useCacheHandler = require.resolve('cachekit-next/use-cache');
const cachekit = {
  // 'use cache' and 'use cache: remote': configure both, or 'remote' silently stays in process memory.
  cacheHandlers: { default: useCacheHandler, remote: useCacheHandler },
  // Route handler and page output, fetch cache: the legacy handler, sharing one tag store with the one above.
  cacheHandler: require.resolve('cachekit-next/handler'),
  // Next's own in-memory layer would shadow the shared store (and never hear of other instances' revalidations).
  cacheMaxMemorySize: 0,
};

/** @type {import('next').NextConfig} */
export default {
  cacheComponents: true,
  partialPrefetching: true,
  ...(nextDefaults ? {} : cachekit),
  distDir: process.env.NEXT_DIST_DIR || '.next',
  generateBuildId: process.env.E2E_BUILD_ID ? async () => process.env.E2E_BUILD_ID : undefined,
  turbopack: { root: here },
  outputFileTracingRoot: here,
};
