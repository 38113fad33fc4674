/**
 * The read rule every reader of a tiered cache follows (the Next handlers and the loaders): an L1 copy that is not
 * fresh (a tag event, past its time, the invalidation epoch) is dropped and the L2 read, then judged again, because
 * another instance may already have stored a newer one. Only an L1 copy is retried, and only once.
 */
import type { HitSource } from './tiered.js';

/** What the rule needs of a cache: a lookup that tells where the value came from, and a way to drop the L1 copy. */
export interface FreshReadSource<H extends { source: HitSource }> {
  lookup(key: string): Promise<H | null>;
  /** Drops this process's copy of `key` (the next lookup reads the L2). */
  invalidateLocal(key: string): void;
}

/**
 * The hit under `key` and its verdict (`'fresh'` or whatever else `judge` answers), or `null` on a miss. With
 * `l2: false` (L1 only) a copy that is not fresh is kept and returned as judged: there is no other copy to read.
 */
export async function lookupFresh<H extends { source: HitSource }, V extends string>(
  cache: FreshReadSource<H>,
  key: string,
  judge: (hit: H) => V | Promise<V>,
  l2 = true,
): Promise<{ hit: H; verdict: V } | null> {
  let hit = await cache.lookup(key);
  if (!hit) return null;
  let judged = judge(hit);
  // A verdict known at once (no tags to read) costs no extra turn: this is every L1 hit's path.
  let verdict = judged instanceof Promise ? await judged : judged;
  if (verdict !== 'fresh' && hit.source === 'l1' && l2) {
    cache.invalidateLocal(key);
    hit = await cache.lookup(key);
    if (!hit) return null;
    judged = judge(hit);
    verdict = judged instanceof Promise ? await judged : judged;
  }
  return { hit, verdict };
}
