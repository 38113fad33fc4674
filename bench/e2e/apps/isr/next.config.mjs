import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));

// One build serves every contender: `next start` reads this file again, and BENCH_HANDLER picks the cache handler,
// wired as each package's README says. Unset (the build, and the "next" contender): Next's built-in cache.
const handlers = {
  // cachekit-next: its handler, Next's own memory layer off (it would shadow the shared store).
  cachekit: { cacheHandler: require.resolve('cachekit-next/handler'), cacheMaxMemorySize: 0 },
  // The floor of any custom handler: a Map in the process (map-handler.mjs), memory layer off. Not shared.
  map: { cacheHandler: path.join(here, 'map-handler.mjs'), cacheMaxMemorySize: 0 },
  // @fortedigital/nextjs-cache-handler 3.3: its Quick Start (a cache-handler.mjs over node-redis).
  forte: { cacheHandler: path.join(here, 'forte-handler.mjs') },
  // @trieb.work/nextjs-turbo-redis-cache 1.18: its default export, memory layer off.
  trieb: { cacheHandler: require.resolve('@trieb.work/nextjs-turbo-redis-cache'), cacheMaxMemorySize: 0 },
};

/** @type {import('next').NextConfig} */
export default {
  ...handlers[process.env.BENCH_HANDLER ?? ''],
  distDir: process.env.NEXT_DIST_DIR || '.next',
  generateBuildId: async () => 'bench-isr',
  turbopack: { root: here },
  outputFileTracingRoot: here,
};
