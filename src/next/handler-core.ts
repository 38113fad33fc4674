/**
 * What the legacy `cacheHandler` (cache-handler.ts) and the 'use cache' handler (use-cache-handler.ts) share: how
 * they are bound to options, how they get their stack (never throwing into a render), the read rule with the shared
 * tag verdict, the write with its announcement, one tag event, and how a fault becomes a report and a miss. Each
 * handler file keeps only what is specific to its Next interface (keys, entry shapes, Next's sentinels).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { nowMs } from '../shared/clock.js';
import { warnRateLimited } from '../shared/log.js';
import { configuredStack, getStack, validateOptions, type CachekitNextOptions, type CacheStack, type EntryCache } from '../stack/stack.js';
import { lookupFresh } from '../store/fresh-read.js';
import type { TagVerdict } from '../store/tags.js';
import type { HitSource } from '../store/tiered.js';
import { EncryptionError } from '../wire/encryption.js';

/** Where a handler gets its stack: a stack, or (default handlers with a backend module) a promise of one. */
export type StackSource<R extends CacheStack | Promise<CacheStack> = CacheStack | Promise<CacheStack>> = () => R;

/**
 * The stack source of a handler bound to `options` (or to a function returning them, read once on first use).
 * Options are validated here, at construction of the handler, so a typo fails `next build` at once.
 */
export function boundStack(options: CachekitNextOptions | (() => CachekitNextOptions) = {}): StackSource<CacheStack> {
  if (typeof options !== 'function') validateOptions(options);
  let resolved: CachekitNextOptions | undefined;
  return () => getStack((resolved ??= typeof options === 'function' ? options() : options));
}

/** The stack source of the default handler modules: configured by `withCachekit` (or the environment). */
export const configuredSource: StackSource = () => configuredStack();

/**
 * The stack of `source` when it is ready (synchronously: a handler's first steps keep their order), else a promise of
 * it, or of `undefined` when there is none (reported: every call is then a miss, never a render error).
 */
export function readyStack(source: StackSource, operation: string): CacheStack | Promise<CacheStack | undefined> {
  return settled(stackOf(source), operation);
}

/** The stack of `source`, a rejected promise when it failed (never a synchronous throw). */
export function stackOf(source: StackSource): CacheStack | Promise<CacheStack> {
  try {
    return source();
  } catch (error) {
    return Promise.reject(error);
  }
}

/** Reports that no stack could be created: every cache call is then a miss (never a render error). */
function reportUnavailable(error: unknown, operation: string): void {
  const message = error instanceof Error ? error.message : String(error);
  warnRateLimited(`next:unavailable:${message}`, `${message} (cachekit-next ${operation}: not configured, served as a miss)`);
}

/** `stack` itself, or when it is a promise, one that resolves `undefined` (reported) instead of rejecting. */
export function settled(stack: CacheStack | Promise<CacheStack>, operation: string): CacheStack | Promise<CacheStack | undefined> {
  if (!(stack instanceof Promise)) return stack;
  return stack.catch((error: unknown) => {
    reportUnavailable(error, operation);
    return undefined;
  });
}

/**
 * The entry under `storeKey` and its tag verdict, after the shared read rule (store/fresh-read.ts): an L1 copy that
 * is not fresh is dropped and the L2 read first. L1 only (no backend): the copy is the only one and is judged as it is.
 */
export function readEntry<E>(
  stack: CacheStack,
  cache: EntryCache<E>,
  storeKey: string,
  tagsOf: (entry: E) => readonly string[],
  writtenAt: (entry: E) => number,
): Promise<{ hit: { value: E; source: HitSource }; verdict: TagVerdict } | null> {
  // The rule's own result, not a reshaped copy: every L1 hit runs this, and a `.then` costs a promise and a turn.
  const judge = (hit: { value: E }) => stack.tags.verdict(tagsOf(hit.value), writtenAt(hit.value));
  return lookupFresh(cache, storeKey, judge, stack.backend !== null);
}

/**
 * The entry under `storeKey` (`expired`) expired (a hard tag event): one instance of the fleet renders it anew. `null` when that is
 * this one (it holds the lease, or there are no locks: Next renders), else the new entry the lease holder stored,
 * read from the L2 with growing pauses for up to `regenerationWaitMs`; `null` again when none came by then.
 */
export async function awaitRegeneration<E>(
  stack: CacheStack,
  cache: EntryCache<E>,
  storeKey: string,
  tagsOf: (entry: E) => readonly string[],
  writtenAt: (entry: E) => number,
  expired: E,
): Promise<{ hit: { value: E; source: HitSource }; verdict: TagVerdict } | null> {
  const waitMs = stack.leases.waitMs;
  if (waitMs <= 0 || (await stack.leases.claim(storeKey, writtenAt(expired)))) return null;
  const deadline = nowMs() + waitMs;
  for (let pause = 10; ; pause = Math.min(pause * 2, 200)) {
    const left = deadline - nowMs();
    if (left <= 0) return null;
    await sleep(Math.min(pause, left));
    const read = await readEntry(stack, cache, storeKey, tagsOf, writtenAt);
    if (read && read.verdict !== 'expired') return read;
  }
}

/**
 * Stores `entry` (after the epoch's first read, which would flush it), calls `stored` once the L2 holds it, then
 * tells every other instance to drop its L1 copy (over messages without waiting for the PUBLISH: see announceWritten).
 */
export async function writeEntry<E>(
  stack: CacheStack,
  cache: EntryCache<E>,
  storeKey: string,
  entry: E,
  ttlSeconds: number,
  stored?: () => void,
): Promise<void> {
  const started = stack.bus.started();
  if (started) await started;
  await cache.set(storeKey, entry, ttlSeconds);
  stored?.();
  await stack.bus.announceWritten([storeKey]);
  // A new entry: this instance, if it held the old version's regeneration lease, is done with it.
  stack.leases.written(storeKey);
}

/** A read that failed: fail-closed encryption throws (the user chose a failing page over a silent miss), anything else is reported and is a miss. */
export function readFault(stack: CacheStack, error: unknown, key: string): void {
  if (error instanceof EncryptionError) throw error;
  stack.report(error, 'get', key);
}

/** The tags of a tag event, whatever shape Next passed them in (a string, an array, or nothing usable). */
export function tagList(tags: unknown): string[] {
  return typeof tags === 'string' ? [tags] : Array.isArray(tags) ? tags : [];
}
