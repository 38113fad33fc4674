/**
 * The composition root: `CacheStack` turns one set of options into the object graph every cache of a process shares
 * (the backend and its connections, the L1s, the tag store, the invalidation bus, the encryptor). Next constructs the
 * legacy handler on every request, so stacks are kept per configuration in the process registry: the ESM and CJS
 * builds, the legacy and 'use cache' handlers and the loaders all get the same one.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { resolveBackend } from './resolve.js';
import type { Backend } from '../protocol/backend.js';
import type { BreakerOptions } from '../store/breaker.js';
import { detachedFromAsyncContext, runOutsideAsyncContext } from '../shared/async-context.js';
import type { CompressionOptions } from '../wire/frame.js';
import { CoherenceBus } from '../store/coherence.js';
import { objectId } from '../shared/identity.js';
import { Encryptor, type EncryptionOptions } from '../wire/encryption.js';
import { infoOnce, warnRateLimited } from '../shared/log.js';
import { ConfigError, DEFAULT_TIMEOUT_MS } from '../shared/options.js';
import { validateWith } from '../shared/option-schema.js';
import { breakerSettings, deprecatedTenant, DEFAULT_COHERENCE_TTL_SECONDS, HANDLER_OPTIONS } from './vocabulary.js';
import { singleton } from '../shared/registry.js';
import { entryCipher, SealedCache } from '../store/sealed.js';
import { TagStore, type TagVerdict } from '../store/tags.js';
import { L2Guard, type ErrorHandler } from '../store/l2-guard.js';
import { RegenerationLeases } from '../store/regeneration.js';
import { TieredCache, type L1Options } from '../store/tiered.js';
import { bytesSerializer, type Serializer } from '../wire/frame.js';
import { backendFromDescription, loadBackendModule, validateBackendSpec, type BackendSpec } from './backend-spec.js';
import { applyBuiltOptionsFromStandalone } from './built-options.js';
import { record, revalidateProfile } from '../shared/telemetry.js';
import { startDebugLogFromEnv } from '../shared/debug-log.js';
import { handlerEntrySerializer, type HandlerEntry } from '../wire/next-entry.js';
import { useCacheEntrySerializer, type UseCacheStoredEntry } from '../wire/use-cache-entry.js';
import { handlerChannel, tagKeyPrefix } from '../wire/keys.js';
import { isInsideNext, isNextBuild, isNextDevServer, l1MaxSizeMbFromEnv, nextDeploymentId, OPTIONS_ENV, processEnv, type Env } from '../shared/env.js';

export interface CachekitNextOptions {
  /** The L2. `null` = L1 only (per process). @default resolved: setDefaultBackend > environment > embedded File */
  backend?: Backend | null;
  /** Prefix of every key this package writes. @default 'cachekit:' */
  keyPrefix?: string;
  /** The app's namespace: two apps on one store never share entries or tags. @default the app's package.json name */
  namespace?: string;
  /**
   * Scopes page and route entries to one deployment, so a new build never serves an old build's HTML.
   * @default NEXT_DEPLOYMENT_ID, else the build's BUILD_ID
   */
  deploymentId?: string;
  /** In-memory L1, or `false` for none. `maxTtlSeconds` bounds an L1 copy's life on top of the coherence rules. @default { maxSizeMb: 100 } */
  l1?: L1Options | false;
  /**
   * The separate in-memory L1 of 'use cache' entries (`cacheHandlers`), or `false` for none: its own byte budget,
   * so large RSC payloads never evict pages and fetches, and the reverse. @default the `l1` setting
   */
  useCacheL1?: L1Options | false;
  /**
   * Read-your-own-writes across instances on backends without invalidation messages (every backend but Redis): an
   * instance reads a small invalidation epoch from the L2 once per request and drops the L1 copies and tag states
   * another instance changed, so a request that starts after `updateTag`/`revalidateTag`/a write resolved on any
   * instance sees it. One tiny read per request (Memcached, File: well under a millisecond; CachekitIO: one HTTPS
   * round trip); a write or tag event costs two small writes more. `false`: no epoch, each instance trusts its L1
   * copies and tag states for `coherenceTtlSeconds` instead. @default true
   */
  readYourWrites?: boolean;
  /**
   * Without invalidation messages: with `readYourWrites`, the longest local state is trusted when no request reads
   * the epoch (cache(fn) calls outside a request) or the L2 cannot be read; without it, the longest an instance serves
   * an entry or tag state from its L1 before asking the L2 again. Either way the worst-case staleness across
   * instances, in seconds. @default 1
   */
  coherenceTtlSeconds?: number;
  /**
   * One regeneration per stale entry across the fleet (backends with locks: Redis, CachekitIO, File): the first
   * instance to see an entry stale takes a lease of this many ms and regenerates it; the others serve it as fresh
   * until the new entry arrives or the lease ends. `0`: every instance regenerates (Next dedupes per process only).
   * @default 15000
   */
  regenerationLeaseMs?: number;
  /**
   * An entry that expired (a hard `revalidateTag`) is regenerated by the lease holder alone: the other instances wait up
   * to this many ms for its new entry before they render it themselves. `0`: every instance renders at once.
   * @default 5000 (at most `regenerationLeaseMs`)
   */
  regenerationWaitMs?: number;
  /** The longest TTL any entry gets, in seconds; also how long tag state outlives its event. @default 2592000 (30 days) */
  maxTtlSeconds?: number;
  /** Deadline for every L2 call in ms; past it the call is a miss (the loaders' default too). @default 1500 */
  timeoutMs?: number;
  /** Compression of stored entries, or `false`. @default { thresholdBytes: 4096, level: 1 } */
  compression?: CompressionOptions | false;
  /** Circuit breaker on the backend: `true`, its settings, or `false`. @default true */
  breaker?: boolean | BreakerOptions;
  /** Receives every backend fault the handler turned into a miss. @default logs, rate limited */
  onError?: ErrorHandler;
  /**
   * Seed the store from the build's prerendered output on first use (set-if-absent), so the first request per route
   * after a deploy is a HIT instead of a render. Needs Next 16.4+ (`routeCache.key` in `.meta` files). @default false
   */
  warmStart?: boolean;
  /**
   * An L1 hit of a page, route or image answers after one turn of the event loop instead of within microtasks, so that
   * Next's ResponseCache merges the requests for it that arrive meanwhile (one cache read and one response entry for
   * all of them, as it does while a read waits on the network). Costs a request about a microsecond when alone.
   * @default true
   */
  mergeRequests?: boolean;
  /**
   * Encrypts every entry (pages, routes, fetches, images, 'use cache') with AES-256-GCM under per-tenant keys; the L1
   * keeps the ciphertext. `true` or an object: the master key comes from CACHEKIT_MASTER_KEY (rotation:
   * CACHEKIT_PREVIOUS_MASTER_KEYS) unless `masterKey` is given here (only in a module of your own, never in
   * next.config: withCachekit puts its options in the environment). A value that fails to decrypt is a miss and is
   * evicted; with `failClosed` (or CACHEKIT_ENCRYPTION_FAIL_CLOSED) the page fails instead. Or an `Encryptor`.
   * @default false
   */
  encryption?: boolean | Encryptor | (Partial<EncryptionOptions> & { /** @deprecated use the top-level `tenant` */ tenant?: string });
  /** Tenant of the encryption keys (as the loaders' `tenant`). @default the namespace */
  tenant?: string;
}

/** What the handlers need of an entry cache: a TieredCache, or a SealedCache over one. */
export type EntryCache<T> = Pick<TieredCache<T>, 'lookup' | 'get' | 'set' | 'add' | 'delete' | 'invalidateLocal' | 'clearLocal' | 'hasLocal' | 'stats'>;

function encryptorOf(option: CachekitNextOptions['encryption'], env: Env): Encryptor | undefined {
  if (option === undefined || option === false) return undefined;
  if (option instanceof Encryptor) return option;
  const { tenant: _tenant, ...overrides } = option === true ? {} : option;
  const encryptor = Encryptor.fromEnv(env, overrides);
  if (!encryptor) throw new ConfigError(COMPONENT, 'encryption', 'is on but there is no master key: set CACHEKIT_MASTER_KEY (hex, at least 32 bytes)');
  return encryptor;
}

export const DEFAULT_MAX_TTL_SECONDS = 30 * 24 * 3600;
const COMPONENT = 'cachekit-next';

/** Validates options at construction (createCacheHandler / withCachekit), naming the offending option. */
export function validateOptions(options: CachekitNextOptions): void {
  validateWith(COMPONENT, HANDLER_OPTIONS, options);
}

export class CacheStack {
  readonly options: CachekitNextOptions;
  readonly backend: Backend | null;
  readonly entries: EntryCache<HandlerEntry>;
  /** The encryptor of every entry, when `encryption` is on. */
  readonly encryptor: Encryptor | undefined;
  readonly #tenant: string;
  readonly tags: TagStore;
  readonly bus: CoherenceBus;
  readonly keyPrefix: string;
  readonly namespace: string;
  readonly maxTtlSeconds: number;
  readonly #onError: ErrorHandler;
  /** Every L2 call of the stack outside the entry caches (tag keys, the epoch, messages), and every report. */
  readonly guard: L2Guard;
  /** Fleet-wide single regeneration of stale entries (store/regeneration.ts). */
  readonly leases: RegenerationLeases;
  #deploymentId: string | undefined;
  /** BUILD_ID was missing and cannot appear any more (not a build): the deployment is 'build' for good. */
  #buildIdMissing = false;
  #useCacheEntries: EntryCache<UseCacheStoredEntry> | undefined;
  readonly #useCacheL1: L1Options | false;
  readonly #l1MaxTtlSeconds: number;
  /** `next build` is running: nothing is announced to other instances. */
  readonly building: boolean;
  /** `next dev`'s server. */
  readonly devServer: boolean;
  /** CACHEKIT_L1_MAX_SIZE_MB, the L1 budget when `l1.maxSizeMb` is not given. */
  readonly #l1MaxSizeMb: number | undefined;
  readonly ready: Promise<boolean>;

  constructor(options: CachekitNextOptions) {
    validateOptions(options);
    this.options = options;
    // The composition root is an edge: the environment is read here and passed down as values.
    const env = processEnv();
    startDebugLogFromEnv(env);
    const backend = resolveBackend(options.backend, { defaultFileCacheDir: path.join(process.cwd(), '.next', 'cache', 'cachekit') });
    // Its connections open lazily, in whichever request calls first: they must not keep that request alive.
    this.backend = backend && detachedFromAsyncContext(backend);
    this.keyPrefix = options.keyPrefix ?? 'cachekit:';
    this.namespace = options.namespace ?? defaultNamespace();
    this.maxTtlSeconds = options.maxTtlSeconds ?? DEFAULT_MAX_TTL_SECONDS;
    this.#deploymentId = options.deploymentId ?? nextDeploymentId(env);
    this.#onError =
      options.onError ??
      ((error, context) =>
        warnRateLimited(`next:${error.backend}:${error.kind}:${context.operation}`, `${error.message} (cachekit-next ${context.operation}; served as a miss)`));

    const building = isNextBuild(env);
    this.building = building;
    this.devServer = isNextDevServer(env);
    this.#l1MaxSizeMb = l1MaxSizeMbFromEnv(env);
    const report = (error: unknown, operation: string) => this.report(error, operation);
    const coherenceTtl = options.coherenceTtlSeconds ?? DEFAULT_COHERENCE_TTL_SECONDS;
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    // Tag keys, the invalidation epoch and messages: the same deadline and breaker as the entries.
    const breaker: BreakerOptions | false | undefined = options.breaker === false ? false : breakerSettings(options.breaker);
    this.guard = new L2Guard({ backend: this.backend, timeoutMs, breaker, onError: this.#onError, name: COMPONENT });
    this.leases = new RegenerationLeases({
      backend: building ? null : this.backend,
      guard: this.guard,
      leaseMs: options.regenerationLeaseMs,
      waitMs: options.regenerationWaitMs,
    });
    const call = this.guard.run;
    this.bus = new CoherenceBus(building ? null : this.backend, handlerChannel(this), report, {
      epoch: options.readYourWrites === false ? false : { maxAgeMs: coherenceTtl * 1000 },
      call,
    });
    // Announcements reach every instance (messages, or the epoch read per request): L1 copies live as long as the L2's.
    // L1 only (no backend): nothing else holds a copy, so the L1 is bounded by entry TTLs alone.
    const alone = this.backend === null;
    this.#l1MaxTtlSeconds = alone || this.bus.coherent ? Infinity : coherenceTtl;
    this.#useCacheL1 = options.useCacheL1 ?? options.l1 ?? {};
    if (options.useCacheL1 === false && this.backend === null) {
      throw new ConfigError(COMPONENT, 'useCacheL1', 'cannot be false when backend is null (nothing would be cached)');
    }
    this.encryptor = encryptorOf(options.encryption, env);
    this.#tenant = options.tenant ?? deprecatedTenant(COMPONENT, options.encryption) ?? this.namespace;
    this.entries = this.#entryCache(
      handlerEntrySerializer(options.compression === false ? { thresholdBytes: false } : options.compression),
      options.l1 === false ? false : this.#l1(options.l1),
      'cachekit-next',
    );
    this.tags = new TagStore({
      backend: this.backend,
      keyPrefix: tagKeyPrefix(this),
      maxEntryTtlSeconds: this.maxTtlSeconds,
      // L1 only: the local states are the only record of each revalidation, kept as long as an entry can live.
      localTtlMs: (alone ? this.maxTtlSeconds : this.bus.coherent ? 30 : coherenceTtl) * 1000,
      call,
      onError: report,
    });
    this.bus.listen({
      keys: (keys) =>
        keys.forEach((key) => {
          this.entries.invalidateLocal(key);
          this.#useCacheEntries?.invalidateLocal(key);
        }),
      tags: (tags) => this.tags.invalidateLocal(tags),
      flush: () => {
        this.entries.clearLocal();
        this.#useCacheEntries?.clearLocal();
        this.tags.clearLocal();
      },
    });
    // Until the subscription is live (Redis down at startup), L1 is flushed every coherenceTtl: same bound as without
    // messages. With the epoch: its first read (the baseline).
    this.ready = this.bus.start(coherenceTtl * 1000);
    if (this.backend === null) infoOnce('next:l1-only', '[cachekit] cachekit-next runs L1-only (backend: null): nothing is shared between instances.');
  }

  /**
   * The 'use cache' entries: a second tiered cache on the same backend (own L1 budget, same deadline, breaker and
   * coherence: the bus drops its L1 copies like the legacy ones), created on first use.
   */
  get useCacheEntries(): EntryCache<UseCacheStoredEntry> {
    return (this.#useCacheEntries ??= runOutsideAsyncContext(() =>
      this.#entryCache(
        useCacheEntrySerializer(this.options.compression === false ? { thresholdBytes: false } : this.options.compression),
        this.#useCacheL1 === false ? false : this.#l1(this.#useCacheL1),
        'cachekit-next:use-cache',
      ),
    ));
  }

  /** The entry caches created so far, by name (metrics and health read their L1 figures). */
  get caches(): { name: string; cache: EntryCache<unknown> }[] {
    const all = [{ name: 'cachekit-next', cache: this.entries as EntryCache<unknown> }];
    return this.#useCacheEntries ? [...all, { name: 'cachekit-next:use-cache', cache: this.#useCacheEntries as EntryCache<unknown> }] : all;
  }

  /** An L1 setting with the coherence bound applied (a given `maxTtlSeconds` can only shorten it). */
  #l1(l1: L1Options | undefined): L1Options {
    const maxSizeMb = l1?.maxSizeMb ?? this.#l1MaxSizeMb;
    return { ...l1, ...(maxSizeMb === undefined ? {} : { maxSizeMb }), maxTtlSeconds: Math.min(l1?.maxTtlSeconds ?? Infinity, this.#l1MaxTtlSeconds) };
  }

  /** A tiered cache of entries, sealed (the L1 keeps ciphertext) when encryption is on. */
  #entryCache<T>(serializer: Serializer<T>, l1: L1Options | false, name: string): EntryCache<T> {
    // The stack's guard: entries, tag keys, the epoch and messages share one deadline, breaker and reporter.
    const settings = { backend: this.backend, l1, guard: this.guard, name };
    if (!this.encryptor) return new TieredCache<T>({ ...settings, serializer });
    // The AAD binds each entry to this app's tenant and its key: an entry copied under another key never decrypts.
    const context = (cacheKey: string, tenantId: string) => ({ tenantId, cacheKey, format: 'cachekit-next', compressed: false });
    return new SealedCache<T>(
      new TieredCache<Uint8Array>({ ...settings, serializer: bytesSerializer }),
      serializer,
      entryCipher(this.encryptor, context),
      this.#tenant,
    );
  }

  /**
   * One tag event for both interfaces (legacy `revalidateTag`, 'use cache' `updateTags`): the shared tag store marks
   * `tags` (stale now and expired after `durations.expire`, or expired now without durations), then every other
   * instance is told to drop its local state of them. Never throws: a store fault is reported, the event stays local.
   */
  async revalidateTags(tags: readonly string[], durations?: { expire?: number }): Promise<void> {
    const list = tags.filter((tag) => typeof tag === 'string' && tag.length > 0);
    if (list.length === 0) return;
    record({ type: 'revalidate', profile: revalidateProfile(durations), tags: list.length });
    try {
      await this.tags.revalidate(list, durations);
    } catch (error) {
      // Applied on this instance already; other instances will not see it until the store is back.
      this.report(error, 'revalidateTag');
    }
    await this.bus.announceTags(list);
  }

  /**
   * Whether an entry written at `lastModified` with `tags` is fresh, stale or expired, for readers outside the
   * handlers (`cache(fn)`): after the invalidation epoch read this request (or the age bound) needs.
   */
  async tagVerdict(tags: readonly string[], lastModified: number): Promise<TagVerdict> {
    const synced = this.bus.synced();
    if (synced) await synced;
    return this.tags.verdict(tags, lastModified);
  }

  /** The deployment scope of page and route entries (resolved once, from the first handler's serverDistDir). */
  deploymentId(serverDistDir?: string): string {
    if (this.#deploymentId === undefined && serverDistDir && !this.#buildIdMissing) {
      try {
        this.#deploymentId = readFileSync(path.join(serverDistDir, '..', 'BUILD_ID'), 'utf8').trim() || undefined;
      } catch {
        // No BUILD_ID yet (next build still running): entries written now are build-time only. Outside a build it
        // never appears (next start refuses to run without it): read once, not on every get (a failed read is ~17 µs).
        this.#buildIdMissing = !this.building;
      }
    }
    return this.#deploymentId ?? 'build';
  }

  /** Routes every fault to onError as a BackendError (through the guard: one report per fault). */
  report(error: unknown, operation: string, key?: string): void {
    this.guard.report(error, operation, key);
  }

  /** The TTL for an entry: its `expire` when given, never above maxTtlSeconds. */
  ttlFor(expireSeconds: number | undefined): number {
    if (expireSeconds === undefined || !Number.isFinite(expireSeconds) || expireSeconds <= 0) return this.maxTtlSeconds;
    return Math.min(Math.ceil(expireSeconds), this.maxTtlSeconds);
  }

  async close(): Promise<void> {
    await this.bus.stop();
  }
}

export function defaultNamespace(): string {
  try {
    const pkg = JSON.parse(readFileSync(path.join(process.cwd(), 'package.json'), 'utf8')) as { name?: unknown };
    if (typeof pkg.name === 'string' && pkg.name) return pkg.name;
  } catch {
    // no package.json in the working directory
  }
  return 'app';
}

const stacks = () =>
  singleton(
    'stacks',
    () => ({ bySignature: new Map<string, CacheStack>(), byOptions: new WeakMap<CachekitNextOptions, CacheStack>() }),
    (held) => Promise.all([...held.bySignature.values()].map((stack) => stack.close())),
  );

/**
 * The process's stack for `options`: one per distinct configuration (equal options share one, whichever object holds
 * them). Next constructs a handler per request, each asking for its stack: the same options object is answered from a
 * memo, without serialising the options again.
 */
export function getStack(options: CachekitNextOptions = {}): CacheStack {
  const held = stacks();
  const known = held.byOptions.get(options);
  if (known) return known;
  const { backend, onError, ...rest } = options;
  const signature = JSON.stringify([
    backend === undefined ? 'resolved' : backend === null ? 'none' : objectId(backend),
    onError ? objectId(onError) : '',
    rest,
  ]);
  let stack = held.bySignature.get(signature);
  if (!stack) {
    // Usually created during the first request that needs it: its connections must not capture that request.
    stack = runOutsideAsyncContext(() => new CacheStack(options));
    held.bySignature.set(signature, stack);
  }
  held.byOptions.set(options, stack);
  return stack;
}

/** Every stack of this process (metrics and health read them). */
export function liveStacks(): CacheStack[] {
  return [...stacks().bySignature.values()];
}

/** Drops every stack of this process (tests). */
export async function resetStacks(): Promise<void> {
  const held = stacks();
  const all = [...held.bySignature.values()];
  held.bySignature.clear();
  held.byOptions = new WeakMap();
  await Promise.all(all.map((stack) => stack.close()));
}

export { OPTIONS_ENV };

/** A Next.js process (or one where withCachekit's options are set): loaders default to the handlers' store and scope. */
export function insideNextApp(env: Env = processEnv()): boolean {
  return isInsideNext(env);
}

/** The options in `CACHEKIT_NEXT_OPTIONS`: serialisable ones, with the backend as a spec (module, description, null). */
export type ConfiguredOptions = Omit<CachekitNextOptions, 'backend' | 'onError'> & { backend?: BackendSpec };

/**
 * `CACHEKIT_NEXT_OPTIONS`. In a standalone server (`node server.js`, which never evaluates next.config) the generated
 * handler modules set it when Next imports them; a caller before that finds them itself (see built-options.ts).
 */
function optionsText(env: NodeJS.ProcessEnv): string | undefined {
  const raw = env[OPTIONS_ENV];
  if (raw || !applyBuiltOptionsFromStandalone(env)) return raw;
  return env[OPTIONS_ENV];
}

/**
 * The options configured for the default handlers: `CACHEKIT_NEXT_OPTIONS` (JSON; what withCachekit sets, or its
 * generated modules under `output: 'standalone'`), else none (environment decides).
 */
export function configuredOptions(env: Env = processEnv()): ConfiguredOptions {
  const raw = optionsText(env);
  if (!raw) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError('environment', OPTIONS_ENV, 'is not valid JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError('environment', OPTIONS_ENV, 'must be a JSON object');
  }
  const { backend, ...rest } = parsed as ConfiguredOptions;
  validateOptions(rest as CachekitNextOptions);
  if (backend !== undefined) validateBackendSpec(backend, `${OPTIONS_ENV}.backend`, { probe: false });
  return parsed as ConfiguredOptions;
}

/** The parsed variable; `stackOptions` is the object handed to getStack, kept so each request reuses its memo. */
type Configured = { raw: string; options: ConfiguredOptions; backend?: Backend; stackOptions?: CachekitNextOptions };

/**
 * The stack of the default handler modules, configured by `CACHEKIT_NEXT_OPTIONS` (what `withCachekit` sets).
 * Usually the stack itself; a promise while a backend module of the app's is imported (once per process, before
 * the stack is created; the handlers await it). Throws (or rejects) a ConfigError on a bad configuration: the
 * handlers report that and answer misses, never a render error. Next constructs a handler per request: after the
 * first, this is a string comparison and a memo lookup.
 */
export function configuredStack(env: Env = processEnv()): CacheStack | Promise<CacheStack> {
  const raw = optionsText(env) ?? '';
  const holder = singleton<{ parsed?: Configured }>('configuredOptions', () => ({}));
  let parsed = holder.parsed;
  if (parsed?.raw !== raw) holder.parsed = parsed = { raw, options: configuredOptions(env) };
  if (parsed.stackOptions) return getStack(parsed.stackOptions);
  const { backend: spec, ...options } = parsed.options;
  if (spec && 'module' in spec) {
    const entry = parsed;
    return loadBackendModule(spec.module).then((backend) => {
      entry.stackOptions ??= backend === undefined ? options : { ...options, backend };
      return getStack(entry.stackOptions);
    });
  }
  parsed.stackOptions = spec === undefined ? options : { ...options, backend: spec === null ? null : backendFromDescription(spec, env) };
  return getStack(parsed.stackOptions);
}
