/**
 * Next.js's legacy `cacheHandler` (ISR pages, route handlers, fetch cache, unstable_cache, images) on the tiered
 * cache. Next constructs the class on every request, so the constructor only looks up the per-process stack.
 *
 *   // next.config.mjs
 *   cacheHandler: fileURLToPath(import.meta.resolve('cachekit-next/handler')),
 *   cacheMaxMemorySize: 0,
 */
import type { CachekitNextOptions, CacheStack } from '../stack/stack.js';
import type { HandlerEntry } from '../wire/next-entry.js';
import {
  NEXT_CACHE_TAGS_HEADER,
  type CacheHandlerContext,
  type CacheHandlerValue,
  type GetContext,
  type IncrementalCacheValue,
  type SetContext,
} from '../wire/next-types.js';
import { warnRateLimited } from '../shared/log.js';
import { seedFromBuild } from './warm-start.js';
import { nowMs } from '../shared/clock.js';
import { requestBegan } from '../store/epoch.js';
import { entryKind, spanAttributes } from '../observe/labels.js';
import { autoTrace } from '../observe/tracing.js';
import { type Layer, type LookupOutcome, lookup, lookupStarted, revalidateProfile, telemetryOn, traced, tracing } from '../shared/telemetry.js';
import { handlerEntryKey } from '../wire/keys.js';
import {
  awaitRegeneration,
  boundStack,
  configuredSource,
  readEntry,
  readFault,
  settled,
  stackOf,
  tagList,
  writeEntry,
  type StackSource,
} from './handler-core.js';

const SUPPORTED_KINDS = new Set(['APP_PAGE', 'APP_ROUTE', 'PAGES', 'FETCH', 'REDIRECT', 'IMAGE']);

const warmStarts = new WeakMap<CacheStack, Promise<unknown>>();
/** Stacks whose warm start has finished: their gets no longer wait for it (the hot path stays one Set lookup). */
const warmStarted = new WeakSet<CacheStack>();
/** The longest a request waits for the warm start before going on without it. */
const WARM_START_WAIT_MS = 3_000;

/**
 * How far past its revalidate time a stale entry is backdated. Next compares with `Date.now()`, we read
 * `performance.timeOrigin + performance.now()` (shared/clock.ts), and the two drift apart over a process's life (ms
 * to tens of ms; NTP slews the wall clock only): 1 ms of margin let an entry meant to be stale look fresh to Next.
 */
const BACKDATE_MARGIN_MS = 1_000;

/** Next's "cache forever" revalidate value. */
const INFINITE_CACHE = 0xfffffffe;

type Scope = 'response' | 'fetch' | 'image';

/** Where a get of `kind` reads: fetch and image entries have key spaces of their own. */
function scopeOf(kind: GetContext['kind']): Scope {
  return kind === 'FETCH' ? 'fetch' : kind === 'IMAGE' ? 'image' : 'response';
}

export interface CacheHandlerClass<R extends CacheStack | Promise<CacheStack> = CacheStack> {
  new (ctx?: CacheHandlerContext): CachekitCacheHandler;
  /** The shared per-process stack (metrics, health); a promise while a backend module is being imported. */
  stack(): R;
}

export interface CachekitCacheHandler {
  get(key: string, ctx?: GetContext): Promise<CacheHandlerValue | null>;
  set(key: string, data: IncrementalCacheValue | null, ctx?: SetContext): Promise<void>;
  revalidateTag(tags: string | string[], durations?: { expire?: number }): Promise<void>;
  resetRequestCache(): void;
}

/**
 * A cache handler class bound to `options` (or to a function returning them, read once on first use).
 * Options are validated here, at construction of the class, so a typo fails `next build` at once.
 */
export function createCacheHandler(options: CachekitNextOptions | (() => CachekitNextOptions) = {}): CacheHandlerClass {
  return handlerClassFor(boundStack(options));
}

/** The handler class over a given stack (tests use it to run two "instances" in one process). */
export function handlerClassFor<R extends CacheStack | Promise<CacheStack>>(stack: StackSource<R>): CacheHandlerClass<R> {
  return class CachekitHandler implements CachekitCacheHandler {
    static stack = stack;
    /** A promise only while a backend module is imported, or when the configuration is broken (then rejected). */
    readonly #stack: CacheStack | Promise<CacheStack>;
    readonly #serverDistDir: string | undefined;
    /** This request's read of the invalidation epoch (backends without messages): made by the first get, shared. */
    #synced: Promise<void> | undefined;

    constructor(ctx: CacheHandlerContext = {}) {
      // Next constructs the handler for every request: reads from here on must see every change made before it.
      requestBegan();
      autoTrace(); // picks up a tracer provider the app registered (instrumentation.ts)
      // Never throws into the render: a broken configuration is reported by each call, which answers a miss.
      this.#stack = stackOf(stack);
      if (this.#stack instanceof Promise) this.#stack.catch(() => {});
      this.#serverDistDir = typeof ctx.serverDistDir === 'string' ? ctx.serverDistDir : undefined;
    }

    /** The stack (itself once configured: no promise on the hot path), or `undefined` (reported) when there is none. */
    #rt(operation: string): CacheStack | Promise<CacheStack | undefined> {
      return settled(this.#stack, operation);
    }

    #storeKey(rt: CacheStack, key: string, scope: Scope): string {
      return handlerEntryKey(rt, scope, key, scope === 'response' ? rt.deploymentId(this.#serverDistDir) : '');
    }

    get(key: string, ctx: GetContext = { kind: 'APP_PAGE' }): Promise<CacheHandlerValue | null> {
      if (!tracing()) return this.#get(key, ctx); // the hot path: no span closures without a tracer
      return traced(
        'cachekit.get',
        () => spanAttributes(entryKind(ctx.kind), key),
        () => this.#get(key, ctx),
        () => this.#holdsLocally(key, ctx),
      );
    }

    /** Whether the L1 holds the entry `get(key, ctx)` reads (tracing: such a lookup is an event, not a span). */
    #holdsLocally(key: string, ctx: GetContext): boolean {
      const rt = this.#stack;
      return !(rt instanceof Promise) && rt.entries.hasLocal(this.#storeKey(rt, key, scopeOf(ctx.kind)));
    }

    async #get(key: string, ctx: GetContext): Promise<CacheHandlerValue | null> {
      const started = lookupStarted();
      const got = this.#rt('get');
      const rt = got instanceof Promise ? await got : got;
      if (!rt) return null;
      // Told to listeners and tracers only: with none, an L1 hit builds no labels (the hot path).
      const answer = (value: CacheHandlerValue | null, outcome: LookupOutcome, layer: Layer) =>
        telemetryOn() ? lookup(entryKind(ctx.kind), outcome, layer, rt.guard.backendType, key, started, value) : value;
      try {
        if (rt.options.warmStart && this.#serverDistDir && ctx.kind !== 'FETCH' && !warmStarted.has(rt)) {
          await this.#warmStart(rt, this.#serverDistDir);
        }
        if (rt.bus.epoch) {
          await (this.#synced ??= rt.bus.syncForRequest());
          const fresh = rt.bus.fresh(); // a handler kept past one request: the age bound still holds
          if (fresh) await fresh;
        }
        const scope = scopeOf(ctx.kind);
        const tagsOf = (entry: HandlerEntry) => (scope === 'fetch' ? [...entry.tags, ...(ctx.tags ?? []), ...(ctx.softTags ?? [])] : entry.tags);
        // A fetch entry's tags come with the request: their states are read alongside the entry (one round trip on a
        // cold read instead of two; states already known cost nothing). Failures are reported by the verdict.
        if (scope === 'fetch' && (ctx.tags?.length || ctx.softTags?.length))
          void rt.tags.states([...(ctx.tags ?? []), ...(ctx.softTags ?? [])]).catch(() => {});
        const storeKey = this.#storeKey(rt, key, scope);
        // A page's or route's tags live in the entry, but two of its implicit tags follow from its key: read beside the
        // entry when the L1 lacks it, so that a cold read of a page whose route is known is one round trip, not two.
        if (scope === 'response' && (ctx.kind === 'APP_PAGE' || ctx.kind === 'APP_ROUTE') && !rt.entries.hasLocal(storeKey)) {
          const guessed = implicitTagsOfKey(key);
          if (guessed.length > 0) void rt.tags.states(guessed).catch(() => {});
        }
        let read = await readEntry(rt, rt.entries, storeKey, tagsOf, lastModifiedOf);
        // Expired by a tag event: one instance renders it; here, maybe the new entry another instance rendered.
        if (read?.verdict === 'expired') read = await awaitRegeneration(rt, rt.entries, storeKey, tagsOf, lastModifiedOf, read.hit.value);
        if (!read) return answer(null, 'miss', 'none');
        const entry = read.hit.value;
        const verdict = read.verdict;
        // A value of the wrong kind makes Next throw an InvariantError: for us it is a miss.
        if ((scope === 'fetch') !== (entry.value?.kind === 'FETCH') || verdict === 'expired') return answer(null, 'miss', 'none');
        const result: CacheHandlerValue = { lastModified: entry.lastModified, value: servedValue(entry, ctx) };
        if (entry.cacheControl) result.cacheControl = entry.cacheControl;
        // Stale (a tag marked stale, or older than its revalidate): one instance of the fleet regenerates it (the lease
        // holder gets it as stale), the others serve it as fresh meanwhile. Past its expire it is Next's miss anyway.
        const now = verdict === 'stale' || rt.leases.active ? nowMs() : 0;
        if (verdict === 'stale' || (rt.leases.active && pastRevalidate(entry, ctx, now))) {
          if (pastExpire(entry, now) || (await rt.leases.claim(storeKey, entry.lastModified))) {
            if (verdict === 'stale') backdate(result, entry, ctx);
          } else result.lastModified = now;
        }
        const answered = answer(result, verdict === 'stale' ? 'stale' : 'hit', read.hit.source);
        // `mergeRequests`: an L1 hit of a response answers after a turn of the event loop, not within microtasks.
        // Next's ResponseCache merges the requests for a key that arrive while its read runs; a read with no I/O to
        // wait for ends before the next request is even parsed, so none would be. Not while Next builds. After the
        // lookup is recorded: its duration (metrics, debug log) is the read's, not the wait's.
        if (read.hit.source === 'l1' && scope !== 'fetch' && rt.options.mergeRequests !== false && !rt.building) await nextTurn();
        return answered;
      } catch (error) {
        readFault(rt, error, key);
        return answer(null, 'miss', 'none');
      }
    }

    /** Seeds once per process; later requests wait at most for the same promise, bounded by `WARM_START_WAIT_MS`. */
    async #warmStart(rt: CacheStack, serverDistDir: string): Promise<void> {
      let seeding = warmStarts.get(rt);
      if (!seeding) {
        if (rt.building) {
          warmStarted.add(rt); // the build writes the output it would seed from
          return;
        }
        seeding = seedFromBuild(rt, serverDistDir, (key) => this.#storeKey(rt, key, 'response'))
          .catch((error: unknown) => rt.report(error, 'warmStart'))
          .finally(() => warmStarted.add(rt));
        warmStarts.set(rt, seeding);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([seeding, new Promise((resolve) => (timer = setTimeout(resolve, WARM_START_WAIT_MS)))]);
      clearTimeout(timer);
    }

    set(key: string, data: IncrementalCacheValue | null, ctx: SetContext = {}): Promise<void> {
      return traced(
        'cachekit.set',
        () => spanAttributes(entryKind(data?.kind ?? ctx.kind), key),
        () => this.#set(key, data, ctx),
      );
    }

    async #set(key: string, data: IncrementalCacheValue | null, ctx: SetContext): Promise<void> {
      const rt = await this.#rt('set');
      if (!rt) return;
      try {
        if (data && !SUPPORTED_KINDS.has(data.kind)) {
          warnRateLimited(`next:kind:${data.kind}`, `[cachekit] cache value kind ${JSON.stringify(data.kind)} is not supported; not cached`);
          return;
        }
        const scope: Scope = ctx.fetchCache || data?.kind === 'FETCH' ? 'fetch' : ctx.kind === 'IMAGE' || data?.kind === 'IMAGE' ? 'image' : 'response';
        const entry: HandlerEntry = { lastModified: nowMs(), tags: tagsOf(data, ctx), value: data };
        const cacheControl = scope === 'fetch' ? undefined : ctx.cacheControl;
        if (cacheControl) entry.cacheControl = cacheControl;
        await writeEntry(rt, rt.entries, this.#storeKey(rt, key, scope), entry, rt.ttlFor(cacheControl?.expire));
      } catch (error) {
        rt.report(error, 'set', key);
      }
    }

    revalidateTag(tags: string | string[], durations?: { expire?: number }): Promise<void> {
      // The same event as the 'use cache' handler's updateTags: one tag store, one announcement.
      return traced(
        'cachekit.revalidate_tag',
        () => ({ 'cachekit.profile': revalidateProfile(durations) }),
        async () => {
          const rt = await this.#rt('revalidateTag');
          await rt?.revalidateTags(tagList(tags), durations);
        },
      );
    }

    resetRequestCache(): void {
      // Per-request state only (this request's epoch read); the shared L1 is deliberately kept.
      this.#synced = undefined;
      requestBegan();
    }
  };
}

const lastModifiedOf = (entry: HandlerEntry) => entry.lastModified;

/** Resolves in the event loop's check phase: after the I/O callbacks (other requests) that were ready. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The implicit tags of an App Router page or route that its cache key tells: the root layout's, and its pathname's
 * (Next's `getImplicitTags`: `_N_T_/layout`, one per segment of the route pattern, `_N_T_<pathname>`; `/` and `/index`
 * go together). Keys are `/route-cache/<KIND>/<sha256>/$<pathname>` (Next 16.3.8+, 15.5.27+) or the bare pathname.
 * Only a guess to read ahead (the entry's own `x-next-cache-tags` decide): none for a pathname Next would encode.
 */
export function implicitTagsOfKey(key: string): string[] {
  let pathname = key;
  if (key.startsWith('/route-cache/')) {
    const at = key.indexOf('/$/');
    if (at < 0) return [];
    pathname = key.slice(at + 2);
  }
  // Next writes non-ASCII pathnames' tags encoded (encodeHeaderSafe): not guessed.
  if (!pathname.startsWith('/') || !/^[\x21-\x7e]+$/.test(pathname)) return [];
  if (pathname === '/index' || pathname === '/') return ['_N_T_/layout', '_N_T_/', '_N_T_/index'];
  return ['_N_T_/layout', `_N_T_${pathname}`];
}

/** The tags an entry answers to: fetches carry them in ctx, pages and routes in `x-next-cache-tags`. */
function tagsOf(data: IncrementalCacheValue | null, ctx: SetContext): string[] {
  if (!data) return [];
  if (data.kind === 'FETCH') return [...new Set([...(ctx.tags ?? []), ...(data.tags ?? [])])];
  if (data.kind === 'APP_PAGE' || data.kind === 'APP_ROUTE' || data.kind === 'PAGES') {
    const header = data.headers?.[NEXT_CACHE_TAGS_HEADER];
    const text = Array.isArray(header) ? header.join(',') : typeof header === 'string' ? header : '';
    return text ? text.split(',').filter(Boolean) : [];
  }
  return [];
}

/** As Next's file-system cache: fallback shells and postponed PPR pages are served without their RSC payload. */
function servedValue(entry: HandlerEntry, ctx: GetContext): IncrementalCacheValue | null {
  const value = entry.value;
  if (value?.kind === 'APP_PAGE' && value.rscData && (ctx.isFallback || (ctx.isRoutePPREnabled && value.postponed != null))) {
    const { rscData: _omitted, ...rest } = value;
    return rest;
  }
  return value;
}

/**
 * A stale tag: make Next serve this entry as STALE and regenerate it in the background, by moving `lastModified`
 * just past the entry's revalidate window. A page that never revalidates gets a 1 s window for this answer.
 */
/** The entry's revalidate period in seconds, when it has one Next acts on. */
function revalidateSecondsOf(entry: HandlerEntry, ctx: GetContext): number | undefined {
  const revalidate = entry.value?.kind === 'FETCH' ? ctx.revalidate || entry.value.revalidate : entry.cacheControl?.revalidate;
  return typeof revalidate === 'number' && revalidate > 0 && revalidate < INFINITE_CACHE ? revalidate : undefined;
}

/** Older than its revalidate period: Next would serve it stale and regenerate it in the background. */
function pastRevalidate(entry: HandlerEntry, ctx: GetContext, now: number): boolean {
  const revalidate = revalidateSecondsOf(entry, ctx);
  return revalidate !== undefined && now > entry.lastModified + revalidate * 1000;
}

/** Older than its expire period: no longer served at all. */
function pastExpire(entry: HandlerEntry, now: number): boolean {
  const expire = entry.cacheControl?.expire;
  return typeof expire === 'number' && expire < INFINITE_CACHE && now > entry.lastModified + expire * 1000;
}

function backdate(result: CacheHandlerValue, entry: HandlerEntry, ctx: GetContext): void {
  const now = nowMs();
  if (entry.value?.kind === 'FETCH') {
    const revalidate = ctx.revalidate || entry.value.revalidate;
    result.lastModified = now - (typeof revalidate === 'number' && revalidate > 0 ? revalidate : INFINITE_CACHE) * 1000 - BACKDATE_MARGIN_MS;
    return;
  }
  let revalidate = entry.cacheControl?.revalidate;
  if (typeof revalidate !== 'number' || revalidate <= 0 || revalidate >= INFINITE_CACHE) {
    revalidate = 1;
    result.cacheControl = { ...entry.cacheControl, revalidate };
  }
  result.lastModified = now - revalidate * 1000 - BACKDATE_MARGIN_MS;
}

/** The handler configured by `withCachekit` (or the environment): what `cacheHandler: require.resolve('cachekit-next/handler')` loads. */
const CacheHandler: CacheHandlerClass<CacheStack | Promise<CacheStack>> = handlerClassFor(configuredSource);

/** For the modules withCachekit generates under `output: 'standalone'` (see built-options.ts). */
export { applyBuiltOptions } from '../stack/built-options.js';
export type { CachekitNextOptions } from '../stack/stack.js';

export default CacheHandler;
