import { cacheLife, cacheTag } from 'next/cache';

/** 'use cache' (the `default` cache handler): a value that changes on every real computation. */
export async function getComputation(): Promise<{ id: string; at: number }> {
  'use cache';
  cacheTag('items');
  cacheLife({ stale: 60, revalidate: 3600, expire: 86400 });
  return { id: Math.random().toString(36).slice(2, 10), at: Date.now() };
}

/** 'use cache: remote' (the `remote` cache handler), on the same tag. */
export async function getRemoteComputation(): Promise<{ id: string; at: number }> {
  'use cache: remote';
  cacheTag('items');
  cacheLife('hours');
  return { id: Math.random().toString(36).slice(2, 10), at: Date.now() };
}

/** A legacy fetch-cache entry (the `cacheHandler`) on the same tag. The e2e harness's API counts requests. */
export async function fetchItems(): Promise<{ n: number; at: number }> {
  const res = await fetch(`${process.env.DATA_URL ?? 'http://127.0.0.1:4999'}/items`, {
    next: { revalidate: 3600, tags: ['items'] },
  });
  return res.json();
}
