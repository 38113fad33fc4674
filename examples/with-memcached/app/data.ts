import { cache } from 'cachekit-next';

/** Any JSON API; UPSTREAM_URL points it elsewhere (e.g. a local server when offline). */
const UPSTREAM_URL = process.env.UPSTREAM_URL ?? 'https://httpbin.org/uuid';

/** Next's fetch cache: one entry in memcached for all instances, expired by revalidateTag('upstream'). */
export async function getUpstream(): Promise<{ uuid: string }> {
  const res = await fetch(UPSTREAM_URL, { next: { revalidate: 60, tags: ['upstream'] } });
  return res.json();
}

/**
 * A slow query, computed once for all instances and kept 5 minutes; the same tag expires it. No backend given: inside
 * the app, cache(fn) stores on the cache handlers' memcached servers (next.config.mjs).
 */
export const getReport = cache(
  async () => {
    await new Promise((resolve) => setTimeout(resolve, 200)); // stands in for the database
    return { id: crypto.randomUUID().slice(0, 8), computedAt: new Date().toISOString() };
  },
  { name: 'report', ttl: 300, tags: ['upstream'] },
);
