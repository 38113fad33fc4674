import { unstable_cache } from 'next/cache';

/**
 * Next's fetch cache: one entry for all containers, expired by revalidateTag('catalog'). UPSTREAM_URL is any JSON API
 * reachable where the app builds and runs; without it the page skips the call (a `docker build` has no network to it).
 */
export async function getUpstream(): Promise<unknown> {
  if (!process.env.UPSTREAM_URL) return null;
  const res = await fetch(process.env.UPSTREAM_URL, { next: { revalidate: 300, tags: ['catalog'] } });
  return res.json();
}

/** A slow query computed once for all containers (Next's data cache, in the shared store), expired by the same tag. */
export const getCatalog = unstable_cache(
  async () => {
    await new Promise((resolve) => setTimeout(resolve, 100)); // stands in for the database
    const id = crypto.randomUUID().slice(0, 8);
    return { id, items: Array.from({ length: 60 }, (_, i) => ({ sku: `sku-${id}-${i}`, name: `Product number ${i}`, price: 100 + i })) };
  },
  ['catalog'],
  { revalidate: 300, tags: ['catalog'] },
);
