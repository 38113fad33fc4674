import { assertKnownOptions, ConfigError } from '../shared/options.js';

import type { CacheOptions } from './types.js';
import { COMPONENT } from './options.js';

/** The options of Next's `unstable_cache(fn, keyParts, options)`. */
export interface UnstableCacheOptions {
  /** Seconds until the value is stale (then served while one call refreshes it); `false`: until a tag says otherwise. */
  revalidate?: number | false;
  tags?: string[];
}

/** How long a value that never goes stale (`revalidate: false`) is kept, and how long a stale one is still served. */
const UNSTABLE_CACHE_KEEP_SECONDS = 30 * 24 * 3600;

/** `cache(fn, keyParts, { revalidate, tags })`, with Next's `unstable_cache` meaning, as `cache` options. */
export function fromUnstableCacheForm<A extends unknown[]>(fn: (...args: A) => unknown, keyParts: unknown, options: unknown): CacheOptions<A> {
  if (keyParts !== undefined && (!Array.isArray(keyParts) || keyParts.some((part) => typeof part !== 'string'))) {
    throw new ConfigError(COMPONENT, 'keyParts', 'must be an array of strings (the unstable_cache form: cache(fn, keyParts, { revalidate, tags }))');
  }
  const parts = (keyParts ?? []) as string[];
  const given = (options ?? {}) as UnstableCacheOptions;
  assertKnownOptions(COMPONENT, given, ['revalidate', 'tags']);
  const name = [fn.name, ...parts].filter(Boolean).join(':');
  if (!name) throw new ConfigError(COMPONENT, 'keyParts', 'are required for an anonymous function: they scope its keys');
  const { revalidate } = given;
  if (revalidate !== undefined && revalidate !== false && !(typeof revalidate === 'number' && revalidate > 0 && Number.isFinite(revalidate))) {
    throw new ConfigError(COMPONENT, 'revalidate', `must be a number of seconds > 0 or false, got ${JSON.stringify(revalidate)}`);
  }
  return {
    name,
    ...(given.tags ? { tags: given.tags } : {}),
    ...(typeof revalidate === 'number' ? { ttl: revalidate, staleTtl: UNSTABLE_CACHE_KEEP_SECONDS } : { ttl: UNSTABLE_CACHE_KEEP_SECONDS }),
  };
}
