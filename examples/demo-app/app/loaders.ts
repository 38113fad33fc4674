import path from 'node:path';
import { cache, resolveBackend } from 'cachekit-next';

// The store the Next handlers use: the environment's backend (CACHEKIT_REDIS_URL, ...), else the embedded File
// backend under .next/cache/cachekit. cache(fn) left to itself would put that default in $TMPDIR/cachekit.
export const backend = resolveBackend(undefined, { defaultFileCacheDir: path.join(process.cwd(), '.next', 'cache', 'cachekit') });

const upstream = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const generatedAt = () => new Date().toISOString();

function createLoaders() {
  return {
    /** A slow upstream call: 300 ms on a miss, kept 5 minutes. `updateTag('catalog')` expires it. */
    catalog: cache(
      async () => {
        await upstream(300);
        return { products: 100 + Math.floor(Math.random() * 900), generatedAt: generatedAt() };
      },
      { name: 'catalog', ttl: 300, tags: ['catalog'], backend },
    ),

    /** Kept 5 minutes; `revalidatePath('/')` expires it, as it does the page's own cached data. */
    weather: cache(
      async () => {
        await upstream(100);
        return { tempC: Math.round(Math.random() * 300) / 10, generatedAt: generatedAt() };
      },
      { name: 'weather', ttl: 300, paths: ['/'], backend },
    ),

    /** Fresh for 20 s, then served stale for up to 40 s more while one call refreshes it in the background. */
    rates: cache(
      async () => {
        await upstream(150);
        return { eurUsd: Math.round((1 + Math.random() * 0.2) * 10_000) / 10_000, generatedAt: generatedAt() };
      },
      { name: 'rates', ttl: 20, staleTtl: 40, backend },
    ),
  };
}

// Created once per server process, never per request. Next bundles the page and /api/stats separately, each with
// its own copy of this module: keeping the loaders on globalThis gives both the same L1 and the same counters.
const holder = globalThis as { demoLoaders?: ReturnType<typeof createLoaders> };
export const loaders = (holder.demoLoaders ??= createLoaders());
