/**
 * `cachedFetch(input, init & { ttl, tags })`: `fetch` whose successful GET/HEAD responses (status, status text,
 * headers, body bytes) are stored through the same machinery as `cache(fn)` (L1 + L2, single-flight, cross-instance
 * lock, stale-while-revalidate, tags). Every call returns a fresh `Response`. Other methods, requests with a body and
 * non-2xx responses go to the network uncached.
 *
 * Key: `${keyPrefix}${namespace}:fetch:${hash of [method, url, sorted request headers]}` (the argument hash of `cache(fn)`,
 * wire/loader-key.ts).
 */
import type { CachedCore } from './core.js';
import { coreOptions, defaultScope, validateCacheOptions } from './options.js';
import { sharedCore } from './registry.js';
import type { CacheOptions } from './types.js';
import { objectId } from '../shared/identity.js';
import { hashArgs } from '../wire/loader-key.js';
import { stringOption } from '../shared/options.js';
import { cachedFetchKey } from '../wire/keys.js';
import { knownNames } from '../shared/option-schema.js';
import { CACHED_FETCH_OPTIONS } from '../stack/vocabulary.js';

export type CachedFetchInit = RequestInit &
  Pick<CacheOptions, 'ttl' | 'staleTtl' | 'tags' | 'namespace' | 'keyPrefix' | 'backend' | 'stack' | 'lockTimeoutMs' | 'lockWaitMs'>;

interface StoredResponse {
  status: number;
  statusText: string;
  headers: [string, string][];
  body: Uint8Array;
}

const CACHE_KEYS = knownNames(CACHED_FETCH_OPTIONS);
const NULL_BODY = new Set([101, 103, 204, 205, 304]);
/** One core per (backend, stack, key prefix, namespace, lock settings) per process, so concurrent calls share their single-flight. */
function coreFor(options: CacheOptions<never[]>, keyPrefix: string, namespace: string): CachedCore {
  const id = (value: unknown) => (value === undefined ? 'default' : value === null ? 'none' : objectId(value as object));
  const signature = ['cachedFetch', id(options.backend), id(options.stack), keyPrefix, namespace, options.lockTimeoutMs, options.lockWaitMs];
  return sharedCore(signature, () => coreOptions({ ...options, keyPrefix, namespace }, 'cachedFetch'));
}

export async function cachedFetch(input: string | URL | Request, init: CachedFetchInit = {}): Promise<Response> {
  const cacheOptions: Record<string, unknown> = {};
  const requestInit: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(init)) {
    if ((CACHE_KEYS as readonly string[]).includes(name)) cacheOptions[name] = value;
    else requestInit[name] = value;
  }
  const policy = validateCacheOptions(cacheOptions as CacheOptions<never[]>);
  const request = new Request(input, requestInit as RequestInit);
  if ((request.method !== 'GET' && request.method !== 'HEAD') || request.body !== null) return fetch(request);

  const scope = defaultScope(cacheOptions as CacheOptions<never[]>);
  const keyPrefix = stringOption('cachedFetch', 'keyPrefix', cacheOptions.keyPrefix, scope.keyPrefix);
  const namespace = stringOption('cachedFetch', 'namespace', cacheOptions.namespace, scope.namespace);
  const headers = [...request.headers].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const key = cachedFetchKey({ keyPrefix, namespace }, hashArgs([request.method, request.url, headers]));

  const stored = (await coreFor(cacheOptions as CacheOptions<never[]>, keyPrefix, namespace).run(
    key,
    async (): Promise<StoredResponse> => {
      const response = await fetch(request.clone());
      return {
        status: response.status,
        statusText: response.statusText,
        // fetch already decoded the body: its encoding and length headers would describe other bytes.
        headers: [...response.headers].filter(([name]) => name !== 'content-encoding' && name !== 'content-length'),
        body: new Uint8Array(await response.arrayBuffer()),
      };
    },
    { ...policy, store: (value) => (value as StoredResponse).status >= 200 && (value as StoredResponse).status < 300 },
  )) as StoredResponse;
  const body = NULL_BODY.has(stored.status) || request.method === 'HEAD' ? null : new Uint8Array(stored.body);
  return new Response(body, { status: stored.status, statusText: stored.statusText, headers: stored.headers });
}
