/**
 * The shared tag store: per tag, when it was last marked stale and when it expires (epoch ms), as Next.js keeps them
 * in its own tags manifest - but in the L2, so every instance sees every revalidation.
 *
 * Cost model (the reason for this layout):
 * - `revalidate(tags)` writes one or two small keys per tag: O(tags), never O(cached keys).
 * - Reading the state of an entry's tags is one batched read (getMany where offered), or none when the states are
 *   fresh in the local tag cache; concurrent reads of one tag share one request.
 * - Every tag key carries a TTL: it lives until no entry written before the event can still exist (the event time
 *   plus the longest entry TTL), then it disappears by itself. Nothing grows without bound.
 * - Stale and expired times are separate keys, so a write never reads first and two instances never race a merge.
 */
import { LRUCache } from 'lru-cache';
import { hasBatch, type Backend } from '../protocol/backend.js';
import { nowMs } from '../shared/clock.js';
import { tagStateKey } from '../wire/keys.js';
import type { GuardedCall } from './l2-guard.js';

export interface TagState {
  /** Entries written before this time (ms) are stale: served once while they regenerate. */
  stale?: number;
  /** Entries written before this time (ms) are expired once it has passed: a miss. */
  expired?: number;
}

export type TagVerdict = 'fresh' | 'stale' | 'expired';

export interface TagStoreOptions {
  backend: Backend | null;
  /** Prefix of every tag key; include a Redis hash tag (`{...}`) so a cluster keeps all tag keys on one slot. */
  keyPrefix: string;
  /** The longest TTL any entry in the store can have, in seconds: tag keys outlive their events by this much. */
  maxEntryTtlSeconds: number;
  /** How long a tag state read from L2 is trusted locally, in ms (invalidation messages or the epoch cut it short). */
  localTtlMs: number;
  /** Reads and writes of tag keys go through this (the L2 guard: the entries' deadline and breaker). */
  call: GuardedCall;
  onError: (error: unknown, operation: string) => void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Next's rule: an expiry counts once it has passed and did not come before the entry was written. Like Next's
 * 'use cache' check (`timestamp <= expiration`) and unlike its tags manifest (`expired > timestamp`), an entry
 * written in the same millisecond as the event counts as older: across instances that entry was most likely
 * rendered from data read before the event, and the cost of the doubt is one extra render, not a stale page.
 */
export function verdictOf(states: Iterable<TagState | undefined>, lastModified: number, now = nowMs()): TagVerdict {
  let verdict: TagVerdict = 'fresh';
  for (const state of states) {
    if (!state) continue;
    if (state.expired !== undefined && state.expired <= now && state.expired >= lastModified) return 'expired';
    if (state.stale !== undefined && state.stale >= lastModified) verdict = 'stale';
  }
  return verdict;
}

export class TagStore {
  readonly #options: TagStoreOptions;
  readonly #local: LRUCache<string, { state: TagState }>;
  readonly #inflight = new Map<string, Promise<TagState>>();

  constructor(options: TagStoreOptions) {
    this.#options = options;
    this.#local = new LRUCache({ max: 50_000, ttl: Math.max(1, options.localTtlMs), ttlAutopurge: false });
  }

  #staleKey(tag: string): string {
    return tagStateKey(this.#options.keyPrefix, 'stale', tag);
  }

  #expiredKey(tag: string): string {
    return tagStateKey(this.#options.keyPrefix, 'expired', tag);
  }

  /**
   * Marks `tags` as Next.js does: with `durations`, stale now and (when `expire` is given) expired `expire` seconds
   * from now; without, expired now. Applied to the local tag cache at once; throws a BackendError when the shared
   * store could not be written (the caller reports it: other instances will not see this event).
   */
  async revalidate(tags: readonly string[], durations?: { expire?: number }, now = nowMs()): Promise<void> {
    const unique = [...new Set(tags)];
    if (unique.length === 0) return;
    const maxTtl = this.#options.maxEntryTtlSeconds;
    const writes: { key: string; value: Uint8Array; ttlSeconds: number }[] = [];
    for (const tag of unique) {
      const local = { ...(this.#local.get(tag)?.state ?? {}) };
      if (durations) {
        local.stale = now;
        writes.push({ key: this.#staleKey(tag), value: encoder.encode(String(now)), ttlSeconds: maxTtl });
        if (durations.expire !== undefined) {
          const expired = now + Math.max(0, durations.expire) * 1000;
          local.expired = expired;
          writes.push({
            key: this.#expiredKey(tag),
            value: encoder.encode(String(expired)),
            ttlSeconds: Math.ceil((expired - now) / 1000) + maxTtl,
          });
        }
      } else {
        local.expired = now;
        writes.push({ key: this.#expiredKey(tag), value: encoder.encode(String(now)), ttlSeconds: maxTtl });
      }
      this.#inflight.delete(tag);
      this.#local.set(tag, { state: local });
    }
    const backend = this.#options.backend;
    if (!backend) return;
    await this.#options.call('revalidateTag', () => Promise.all(writes.map((w) => backend.set(w.key, w.value, w.ttlSeconds))));
  }

  /** The states of `tags`, from the local cache where fresh, otherwise in one batched L2 read. */
  async states(tags: readonly string[]): Promise<Map<string, TagState>> {
    const result = new Map<string, TagState>();
    const missing: string[] = [];
    const waiting: Promise<void>[] = [];
    for (const tag of tags) {
      if (result.has(tag)) continue;
      const cached = this.#local.get(tag);
      if (cached) {
        result.set(tag, cached.state);
        continue;
      }
      const pending = this.#inflight.get(tag);
      if (pending) waiting.push(pending.then((state) => void result.set(tag, state)));
      else missing.push(tag);
    }
    if (missing.length > 0) {
      const fetched = this.#fetch(missing);
      missing.forEach((tag, i) => {
        const one = fetched.then((states) => states[i]!);
        this.#inflight.set(tag, one);
        waiting.push(
          one.then((state) => {
            result.set(tag, state);
          }),
        );
        void one.finally(() => {
          if (this.#inflight.get(tag) === one) this.#inflight.delete(tag);
        });
      });
    }
    if (waiting.length > 0) await Promise.all(waiting);
    return result;
  }

  /** Whether an entry written at `lastModified` with `tags` is fresh, stale or expired. */
  async verdict(tags: readonly string[], lastModified: number): Promise<TagVerdict> {
    if (tags.length === 0) return 'fresh';
    const states = await this.states(tags);
    return verdictOf(states.values(), lastModified);
  }

  async #fetch(tags: string[]): Promise<TagState[]> {
    const backend = this.#options.backend;
    if (!backend) return tags.map(() => ({}));
    const keys = tags.flatMap((tag) => [this.#staleKey(tag), this.#expiredKey(tag)]);
    let values: (Uint8Array | null)[];
    try {
      values = await this.#options.call('getTags', () => (hasBatch(backend) ? backend.getMany(keys) : Promise.all(keys.map((key) => backend.get(key)))));
    } catch (error) {
      // Fail open: without the shared store, trust what this process last knew (nothing, at worst) and retry soon.
      this.#options.onError(error, 'getTags');
      return tags.map(() => ({}));
    }
    return tags.map((tag, i) => {
      const state: TagState = {};
      const stale = parseTime(values[2 * i] ?? null);
      const expired = parseTime(values[2 * i + 1] ?? null);
      if (stale !== undefined) state.stale = stale;
      if (expired !== undefined) state.expired = expired;
      // A racing revalidate() on this process already stored a newer local state: keep it.
      if (!this.#inflight.has(tag) || this.#local.has(tag)) return this.#local.get(tag)?.state ?? state;
      this.#local.set(tag, { state });
      return state;
    });
  }

  /** Forgets the local state of `tags` (another instance changed them). */
  invalidateLocal(tags: readonly string[]): void {
    for (const tag of tags) {
      this.#local.delete(tag);
      this.#inflight.delete(tag);
    }
  }

  /** Forgets every local tag state (messages may have been missed). */
  clearLocal(): void {
    this.#local.clear();
    this.#inflight.clear();
  }
}

/** A stored timestamp; anything else (a foreign value under the key) counts as no state. */
function parseTime(bytes: Uint8Array | null): number | undefined {
  if (bytes === null) return undefined;
  const value = Number(decoder.decode(bytes));
  return Number.isFinite(value) ? value : undefined;
}
