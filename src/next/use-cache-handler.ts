/**
 * Next.js's `cacheHandlers` ('use cache', 'use cache: remote') on the per-process stack: entries in their own tiered
 * cache on the same backend, tags in the same shared tag store as the legacy handler, so `revalidateTag` on a legacy
 * entry and `updateTags` on a 'use cache' entry are one event.
 *
 *   // next.config.mjs
 *   cacheComponents: true,
 *   cacheHandlers: {
 *     default: require.resolve('cachekit-next/use-cache'),
 *     remote: require.resolve('cachekit-next/use-cache'),
 *   },
 *
 * Configure both kinds: an unconfigured `remote` silently stays in process memory. Next imports the module once per
 * process and uses its default export, a handler object.
 */
import type { CachekitNextOptions, CacheStack } from '../stack/stack.js';
import type { UseCacheStoredEntry } from '../wire/use-cache-entry.js';
import { nowMs } from '../shared/clock.js';
import { tracedUseCacheHandler } from '../observe/labels.js';
import { autoTrace } from '../observe/tracing.js';
import { lookup, lookupStarted } from '../shared/telemetry.js';
import {
  awaitRegeneration,
  boundStack,
  configuredSource,
  readEntry,
  readFault,
  readyStack,
  stackOf,
  tagList,
  writeEntry,
  type StackSource,
} from './handler-core.js';
import { useCacheEntryKey } from '../wire/keys.js';

export type { CachekitNextOptions } from '../stack/stack.js';
export type { UseCacheStoredEntry } from '../wire/use-cache-entry.js';

/** Next's `CacheEntry` (next/cache), written out so this package does not depend on Next's types. */
export interface UseCacheEntry {
  /** The serialized value: read once by `set`; every `get` returns a new stream. */
  value: ReadableStream<Uint8Array>;
  /** The entry's tags, soft tags excluded. */
  tags: string[];
  /** Client stale time, in seconds. */
  stale: number;
  /** Creation time (epoch ms). */
  timestamp: number;
  /** Hard limit after `timestamp`, in seconds. */
  expire: number;
  /** Background refresh after `timestamp`, in seconds; `-1` asks Next to refresh now (stale-while-revalidate). */
  revalidate: number;
}

/** Next's `CacheHandler` (16.x), plus the 15.5 shapes `getExpiration(...tags)` and `expireTags(...tags)`. */
export interface UseCacheHandler<R extends CacheStack | Promise<CacheStack> = CacheStack> {
  get(cacheKey: string, softTags?: string[]): Promise<UseCacheEntry | undefined>;
  set(cacheKey: string, pendingEntry: Promise<UseCacheEntry>): Promise<void>;
  refreshTags(): Promise<void>;
  /** `getExpiration(tags)` (16) or `getExpiration(...tags)` (15.5). */
  getExpiration(...tags: (string | string[])[]): Promise<number>;
  updateTags(tags: string[], durations?: { expire?: number }): Promise<void>;
  /** Next 15.5: expire `tags` now. */
  expireTags(...tags: string[]): Promise<void>;
  /** The shared per-process stack (metrics, health); a promise while a backend module is being imported. */
  stack(): R;
}

/** Next's "forever" for `expire` and `revalidate`: such an entry gets the longest TTL (maxTtlSeconds), not its own. */
const INFINITE_CACHE = 0xfffffffe;

/** Next's dev server keeps 'use cache' entries at least this long, whatever their `expire` (MIN_PRERENDERABLE_EXPIRE). */
const DEV_MIN_EXPIRE_SECONDS = 300;

/** The L2 key of a 'use cache' key (a hash of its UTF-16 units, see wire/keys.ts). */
export function useCacheStoreKey(stack: CacheStack, cacheKey: string): string {
  return useCacheEntryKey(stack, cacheKey);
}

/**
 * Sets still reading their value, per stack and store key: a `get` of that key in this process waits for them
 * instead of answering a miss. Each marker is a bare promise of this module, removed when its set settles, so
 * neither the pending entry nor its stream (nor the request behind them) is kept.
 */
const pendingSets = new WeakMap<CacheStack, Map<string, Promise<void>>>();

function pendingOf(stack: CacheStack): Map<string, Promise<void>> {
  let map = pendingSets.get(stack);
  if (!map) pendingSets.set(stack, (map = new Map()));
  return map;
}

/**
 * A 'use cache' handler object bound to `options` (or to a function returning them, read once on first use).
 * Options are validated here, so a typo fails `next build` at once.
 */
export function createUseCacheHandler(options: CachekitNextOptions | (() => CachekitNextOptions) = {}): UseCacheHandler {
  return useCacheHandlerFor(boundStack(options));
}

/** The handler over a given stack (tests use it to run two "instances" in one process). */
export function useCacheHandlerFor<R extends CacheStack | Promise<CacheStack>>(stack: StackSource<R>): UseCacheHandler<R> {
  // Synchronous when the stack is ready, so `set` registers its pending marker in the same tick as it is called.
  const ready = (operation: string) => {
    autoTrace(); // picks up a tracer provider the app registered (instrumentation.ts)
    return readyStack(stack, operation);
  };
  return tracedUseCacheHandler(
    {
      stack,

      async get(cacheKey: string, softTags: string[] = []): Promise<UseCacheEntry | undefined> {
        const started = lookupStarted();
        const got = ready('get');
        const rt = got instanceof Promise ? await got : got;
        if (!rt) return undefined;
        try {
          const storeKey = useCacheStoreKey(rt, cacheKey);
          const pending = pendingOf(rt).get(storeKey);
          if (pending) await pending;
          // refreshTags read the invalidation epoch for this request; a get without one still keeps the age bound.
          const fresh = rt.bus.fresh();
          if (fresh) await fresh;
          const tagsOf = (entry: UseCacheStoredEntry) => (softTags.length > 0 ? [...entry.tags, ...softTags] : entry.tags);
          let read = await readEntry(rt, rt.useCacheEntries, storeKey, tagsOf, timestampOf);
          // Expired by a tag event: one instance renders it; here, maybe the new entry another instance rendered.
          if (read?.verdict === 'expired') read = await awaitRegeneration(rt, rt.useCacheEntries, storeKey, tagsOf, timestampOf, read.hit.value);
          if (!read) return lookup('use-cache', 'miss', 'none', rt.guard.backendType, cacheKey, started, undefined);
          const entry = read.hit.value;
          const verdict = read.verdict;
          // A negative expire is Next's eviction sentinel (its dev tiered handler overwrites entries with one).
          if (verdict === 'expired' || entry.expire < 0) return lookup('use-cache', 'miss', 'none', rt.guard.backendType, cacheKey, started, undefined);
          lookup('use-cache', verdict === 'stale' ? 'stale' : 'hit', read.hit.source, rt.guard.backendType, cacheKey, started, null);
          // Next compares `timestamp` with `revalidate` (background refresh) and `expire` (miss) on every read, and a
          // shared store can serve until `expire` (its TTL evicts the entry).
          let timestamp = entry.timestamp;
          let revalidate = entry.revalidate;
          const now = nowMs();
          const ageStale = rt.leases.active && revalidate > 0 && now > timestamp + revalidate * 1000;
          if (verdict === 'stale' || ageStale) {
            // One instance of the fleet regenerates it (the lease holder gets it as stale, a tag-stale entry with
            // `revalidate: -1`); the others serve it as fresh until the new entry arrives or the lease ends. Past its
            // expire it is Next's miss anyway: no lease.
            if (now >= timestamp + entry.expire * 1000 || (await rt.leases.claim(storeKey, entry.timestamp))) {
              if (verdict === 'stale') revalidate = -1;
            } else timestamp = now;
          }
          return { value: streamOf(entry.value), tags: [...entry.tags], stale: entry.stale, timestamp, expire: entry.expire, revalidate };
        } catch (error) {
          readFault(rt, error, cacheKey);
          return lookup('use-cache', 'miss', 'none', rt.guard.backendType, cacheKey, started, undefined);
        }
      },

      async set(cacheKey: string, pendingEntry: Promise<UseCacheEntry>): Promise<void> {
        const got = ready('set');
        const rt = got instanceof Promise ? await got : got;
        if (!rt) {
          // Nothing to store it in; the render's own failure (if any) is Next's to report.
          pendingEntry.catch(() => {});
          return;
        }
        const storeKey = useCacheStoreKey(rt, cacheKey);
        const pendings = pendingOf(rt);
        let release = () => {};
        const marker = new Promise<void>((resolve) => (release = resolve));
        pendings.set(storeKey, marker);
        try {
          let entry: UseCacheEntry;
          let value: Uint8Array;
          try {
            entry = await pendingEntry;
            value = await readAll(entry.value);
          } catch {
            // The render failed or its stream errored midway: a partial value would render a partial page, so nothing
            // is stored and the previous entry (if any) stays. Next reports the render error itself.
            return;
          }
          const dev = rt.devServer;
          // `expire: 0` is a dynamic entry in production: Next regenerates it on every read, storing it is wasted work.
          if (!dev && entry.expire === 0) return;
          const ttlSeconds = ttlOf(entry, dev);
          if (ttlSeconds !== undefined && ttlSeconds <= 0) return; // already past its expire: never served
          const stored: UseCacheStoredEntry = {
            value,
            tags: Array.isArray(entry.tags) ? entry.tags.filter((tag) => typeof tag === 'string') : [],
            stale: entry.stale,
            timestamp: entry.timestamp,
            expire: entry.expire,
            revalidate: entry.revalidate,
          };
          // Once stored, readers in this process go on; other instances drop their L1 copy on the announcement.
          await writeEntry(rt, rt.useCacheEntries, storeKey, stored, rt.ttlFor(ttlSeconds), release);
        } catch (error) {
          rt.report(error, 'set', cacheKey);
        } finally {
          release();
          if (pendings.get(storeKey) === marker) pendings.delete(storeKey);
        }
      },

      async refreshTags(): Promise<void> {
        // Tag states are read in batches where they are used (getExpiration, get) and kept locally only while known to
        // be current: until an invalidation message (Redis), or until this per-request read of the invalidation epoch
        // finds another instance changed them (other backends). Creating the entry cache here keeps it off the first read.
        const rt = await ready('refreshTags');
        try {
          void rt?.useCacheEntries;
          await rt?.bus.syncForRequest();
        } catch (error) {
          rt?.report(error, 'refreshTags');
        }
      },

      async getExpiration(...args: (string | string[])[]): Promise<number> {
        const rt = await ready('getExpiration');
        if (!rt) return 0;
        const tags = (args.length === 1 && Array.isArray(args[0]) ? args[0] : args).filter((tag): tag is string => typeof tag === 'string' && tag.length > 0);
        if (tags.length === 0) return 0;
        try {
          const fresh = rt.bus.fresh();
          if (fresh) await fresh;
          // One batched read for all of them (none when their state is current locally).
          const states = await rt.tags.states(tags);
          const now = nowMs();
          let latest = 0;
          for (const state of states.values()) {
            // Only an expiry that has happened counts (as in Next's tags manifest): `revalidateTag(t, profile)` schedules
            // one `expire` seconds ahead, and entries written before it stay usable (stale) until then.
            if (state.expired !== undefined && state.expired <= now && state.expired > latest) latest = state.expired;
          }
          return latest;
        } catch (error) {
          rt.report(error, 'getExpiration');
          return 0;
        }
      },

      async updateTags(tags: string[], durations?: { expire?: number }): Promise<void> {
        await (await ready('updateTags'))?.revalidateTags(tagList(tags), durations);
      },

      async expireTags(...tags: string[]): Promise<void> {
        await (await ready('expireTags'))?.revalidateTags(tags.flat());
      },
    },
    (cacheKey) => {
      const rt = stackOf(stack);
      return !(rt instanceof Promise) && rt.useCacheEntries.hasLocal(useCacheStoreKey(rt, cacheKey));
    },
  );
}

const timestampOf = (entry: UseCacheStoredEntry) => entry.timestamp;

/**
 * Seconds the entry may live from now, or `undefined` for "forever" (the stack caps it at maxTtlSeconds). The dev
 * server keeps entries at least five minutes, as Next's own handler does there.
 */
function ttlOf(entry: UseCacheEntry, dev: boolean): number | undefined {
  const expire = dev ? Math.max(entry.expire, DEV_MIN_EXPIRE_SECONDS) : entry.expire;
  if (typeof expire !== 'number' || Number.isNaN(expire) || expire >= INFINITE_CACHE || expire === Infinity) return undefined;
  const age = Number.isFinite(entry.timestamp) ? Math.max(0, (nowMs() - entry.timestamp) / 1000) : 0;
  return Math.ceil(expire - age);
}

/** Consumes `stream` once into one buffer; rejects if the stream errors or delivers something other than bytes. */
async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!(value instanceof Uint8Array)) throw new TypeError(`'use cache' value stream delivered ${typeof value}, not bytes`);
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    reader.releaseLock();
  }
  // A copy in a buffer of its own (not a slice of Node's shared pool, which the L1 would then keep alive).
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

/** A new stream over a copy of `bytes`: the stored bytes are shared by every reader (L1) and must not change. */
function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  const copy = new Uint8Array(bytes);
  return new ReadableStream<Uint8Array>({
    start(controller) {
      if (copy.byteLength > 0) controller.enqueue(copy);
      controller.close();
    },
  });
}

/** The handler configured by `withCachekit` (or the environment): what `cacheHandlers.default`/`.remote` load. */
const useCacheHandler: UseCacheHandler<CacheStack | Promise<CacheStack>> = useCacheHandlerFor(configuredSource);

/** For the modules withCachekit generates under `output: 'standalone'` (see built-options.ts). */
export { applyBuiltOptions } from '../stack/built-options.js';

export default useCacheHandler;
