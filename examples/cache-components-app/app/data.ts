import { setTimeout as sleep } from 'node:timers/promises';
import { cacheLife, cacheTag } from 'next/cache';

export interface Value {
  /** New on every real computation. */
  id: string;
  /** When it was computed (Date inside 'use cache' is allowed: the scope is cached). */
  at: string;
}

const compute = (): Value => ({ id: Math.random().toString(36).slice(2, 10), at: new Date().toISOString() });

/** Tagged 'use cache' read by the prerendered route handler /api/x. */
export async function getRouteValue(): Promise<Value> {
  'use cache';
  cacheTag('x');
  return compute();
}

/** Tagged 'use cache' read by the page /tagged (same tag, its own entry). */
export async function getPageValue(): Promise<Value> {
  'use cache';
  cacheTag('x');
  return compute();
}

/** Untagged 'use cache' with I/O inside, as Next's use-cache-route-handler-only fixture. */
export async function getUntaggedValue(): Promise<Value> {
  'use cache';
  await sleep(20);
  return compute();
}

/** No tags, a short life: Next regenerates it in the background every ~2 s. */
export async function getLifeValue(): Promise<Value> {
  'use cache';
  cacheLife({ stale: 1, revalidate: 2, expire: 400 });
  return compute();
}
