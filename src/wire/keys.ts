/**
 * Every key and channel name this package writes, in one place: a change here changes what is on the wire, so
 * test/wire/keys.test.ts pins each shape with vectors. Everything an app writes is under `{keyPrefix}{namespace}:`,
 * so two apps on one store never share an entry, a tag state, an invalidation message or an epoch. (Interop keys are
 * the exception by design: Python cachekit derives the same key, with no prefix; see interop.ts.)
 */
import { createHash } from 'node:crypto';

/** The scope of an app's keys: its prefix and namespace. */
export interface KeyScope {
  keyPrefix: string;
  namespace: string;
}

const base = (scope: KeyScope) => `${scope.keyPrefix}${scope.namespace}:`;

/** Where Next's legacy handler keeps a kind of entry (`r`: pages and routes, per deployment; `f`: fetch; `i`: image). */
export function handlerEntryKey(scope: KeyScope, kind: 'response' | 'fetch' | 'image', key: string, deploymentId: string): string {
  if (kind === 'fetch') return `${base(scope)}f:${key}`;
  if (kind === 'image') return `${base(scope)}i:${key}`;
  return `${base(scope)}${deploymentId}:r:${key}`;
}

/**
 * A 'use cache' entry. Next's keys are React-encoded strings of any length that may hold lone UTF-16 surrogates,
 * which UTF-8 (every backend's wire format) cannot carry: two keys differing only there would collide. So the key is
 * hashed over its UTF-16 code units, which encode any JS string injectively; it already includes the build id.
 */
export function useCacheEntryKey(scope: KeyScope, cacheKey: string): string {
  const digest = createHash('sha256').update(Buffer.from(cacheKey, 'utf16le')).digest('hex');
  return `${base(scope)}u:${digest}`;
}

/** The keys of one `cache(fn)` function: its scope, and an entry (`part`: the argument hash or an explicit key). */
export function loaderScope(scope: KeyScope, name: string): string {
  return `${base(scope)}fn:${name}`;
}

export function loaderEntryKey(scope: KeyScope, name: string, part: string): string {
  return `${loaderScope(scope, name)}:${part}`;
}

/** A `cachedFetch` entry (`hash`: the argument hash of [method, url, sorted request headers]). */
export function cachedFetchKey(scope: KeyScope, hash: string): string {
  return `${base(scope)}fetch:${hash}`;
}

/** The tag store's prefix: one Redis hash tag per app, so every tag key sits on one cluster slot. */
export function tagKeyPrefix(scope: KeyScope): string {
  return `${scope.keyPrefix}{${scope.namespace}.tags}:`;
}

/** A tag's stale-at and expired-at records under the tag store's prefix. */
export function tagStateKey(tagPrefix: string, state: 'stale' | 'expired', tag: string): string {
  return `${tagPrefix}${state === 'stale' ? 's' : 'e'}:${tag}`;
}

/** The invalidation channel of the Next handlers' entries and tags. */
export function handlerChannel(scope: KeyScope): string {
  return `${base(scope)}invalidate`;
}

/** The invalidation channel of the loaders (`cache(fn)`, `cachedFetch`) of one namespace. */
export function loaderChannel(scope: KeyScope): string {
  return `${base(scope)}fn:invalidate`;
}

/** The invalidation epoch of a channel (backends without messages), and its journal slots. */
export function epochKey(channel: string): string {
  return `${channel}:epoch`;
}

export function journalSlotKey(epoch: string, slot: number): string {
  return `${epoch}:${slot}`;
}

/** FileBackend's lease file of a key's lock, next to the entry file (`name`: the entry file's name). */
export function fileLockName(entryFileName: string): string {
  return `${entryFileName}.lock`;
}

/**
 * RedisBackend's lock key of an entry: after the backend's prefix, a 0xFF byte (never in a UTF-8 key, so no entry
 * key can collide with a lock key) and `lock:`.
 */
export function redisLockKey(redisPrefix: string, key: string): Buffer {
  return Buffer.concat([Buffer.from(redisPrefix), REDIS_LOCK_MARKER, Buffer.from(key)]);
}

const REDIS_LOCK_MARKER = Buffer.from([0xff, ...Buffer.from('lock:')]);
