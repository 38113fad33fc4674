import { unstable_cache } from 'next/cache';

/** The upstream API the e2e harness runs (it counts requests, so every refetch shows). */
export async function fetchPosts(): Promise<{ n: number; at: number }> {
  const res = await fetch(`${process.env.DATA_URL ?? 'http://127.0.0.1:4999'}/posts`, {
    next: { revalidate: 3600, tags: ['posts'] },
  });
  return res.json();
}

export const cachedComputation = unstable_cache(
  async () => ({ id: Math.random().toString(36).slice(2, 10), at: Date.now() }),
  ['computation'],
  { tags: ['posts'], revalidate: 3600 },
);
