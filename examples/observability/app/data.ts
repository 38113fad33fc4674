import { cache } from 'cachekit-next';

const UPSTREAM_URL = process.env.UPSTREAM_URL ?? 'https://httpbin.org/uuid';

/** Next's fetch cache, tagged 'upstream'. */
export async function getUpstream(): Promise<{ uuid: string }> {
  const res = await fetch(UPSTREAM_URL, { next: { revalidate: 60, tags: ['upstream'] } });
  return res.json();
}

/** A cache(fn) loader on the same Redis, tagged 'upstream' too. */
export const getReport = cache(
  async (id: string) => {
    await new Promise((resolve) => setTimeout(resolve, 50)); // stands in for the database
    return { id, computedAt: new Date().toISOString() };
  },
  { name: 'report', ttl: 300, tags: ['upstream'] },
);
