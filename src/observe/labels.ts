/**
 * The bounded vocabulary of metric labels and span attributes: a kind out of six, a backend type, never a key, a tag
 * or a path (a key appears only as a short hash, and only in spans and debug logs).
 */
import type { Backend } from '../protocol/backend.js';
import { keyHash } from '../shared/debug-log.js';
import { revalidateProfile, traced, type CacheKind, type SpanAttributes } from '../shared/telemetry.js';
import { backendTypeOf } from '../store/tiered.js';

/** The cache kind of a Next.js entry kind (`ctx.kind` of the legacy handler, or the kind of a value). */
export function entryKind(kind: string | undefined): CacheKind {
  switch (kind) {
    case 'FETCH':
      return 'fetch';
    case 'IMAGE':
      return 'image';
    case 'APP_ROUTE':
      return 'route';
    default:
      return 'page';
  }
}

const names = new WeakMap<Backend, string>();

/** A backend's type name (`redis`, `file`...), computed once per backend object. */
export function backendName(backend: Backend | null): string {
  if (backend === null) return 'none';
  let name = names.get(backend);
  if (name === undefined) names.set(backend, (name = backendTypeOf(backend)));
  return name;
}

/** The attributes of a handler or loader span: its kind, and the key only as a hash. */
export function spanAttributes(kind: CacheKind, key: string): SpanAttributes {
  return { 'cachekit.kind': kind, 'cachekit.key_hash': keyHash(key) };
}

interface UseCacheLike {
  get(cacheKey: string, softTags?: string[]): Promise<unknown>;
  set(cacheKey: string, pendingEntry: Promise<unknown>): Promise<void>;
  updateTags(tags: string[], durations?: { expire?: number }): Promise<void>;
}

/**
 * The 'use cache' handler with its get, set and updateTags in spans (when a tracer is installed). `holdsLocally`: whether
 * the L1 holds the entry of a cache key (its lookup is then an event, see observe/tracing.ts).
 */
export function tracedUseCacheHandler<H extends UseCacheLike>(handler: H, holdsLocally: (cacheKey: string) => boolean): H {
  const { get, set, updateTags } = handler;
  handler.get = (cacheKey, softTags) =>
    traced(
      'cachekit.get',
      () => spanAttributes('use-cache', cacheKey),
      () => get.call(handler, cacheKey, softTags),
      () => holdsLocally(cacheKey),
    );
  handler.set = (cacheKey, pending) =>
    traced(
      'cachekit.set',
      () => spanAttributes('use-cache', cacheKey),
      () => set.call(handler, cacheKey, pending),
    );
  handler.updateTags = (tags, durations) =>
    traced(
      'cachekit.revalidate_tag',
      () => ({ 'cachekit.profile': revalidateProfile(durations) }),
      () => updateTags.call(handler, tags, durations),
    );
  return handler;
}
