import { cache } from 'cachekit-next';

// No backend here: inside a Next app, cache(fn) uses the store and namespace of the cache handlers withCachekit set
// up (next.config.mjs), so pages, loaders and revalidateTag/revalidatePath all meet in one place. Module scope, never
// per request: the page and /api/stats each bundle a copy of this module, and both copies share one L1 and info().

const upstream = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const generatedAt = () => new Date().toISOString();

/** A slow upstream call: 300 ms on a miss, kept 5 minutes. `updateTag('catalog')` expires it. */
export const catalog = cache(
  async () => {
    await upstream(300);
    return { products: 100 + Math.floor(Math.random() * 900), generatedAt: generatedAt() };
  },
  { name: 'catalog', ttl: 300, tags: ['catalog'] },
);

/** Kept 5 minutes; `revalidatePath('/')` expires it, as it does the page's own cached data. */
export const weather = cache(
  async () => {
    await upstream(100);
    return { tempC: Math.round(Math.random() * 300) / 10, generatedAt: generatedAt() };
  },
  { name: 'weather', ttl: 300, paths: ['/'] },
);

/** Fresh for 20 s, then served stale for up to 40 s more while one call refreshes it in the background. */
export const rates = cache(
  async () => {
    await upstream(150);
    return { eurUsd: Math.round((1 + Math.random() * 0.2) * 10_000) / 10_000, generatedAt: generatedAt() };
  },
  { name: 'rates', ttl: 20, staleTtl: 40 },
);
