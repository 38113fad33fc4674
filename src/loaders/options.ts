/** `cache(fn)` and `cachedFetch` options: their names, defaults, validation and the scope they resolve to. */
import { resolveBackend } from '../stack/resolve.js';
import { configuredOptions, configuredStack, defaultNamespace, insideNextApp } from '../stack/stack.js';
import { Encryptor } from '../wire/encryption.js';
import { interopSegmentProblem } from '../wire/interop.js';
import { ConfigError, DEFAULT_TIMEOUT_MS, stringOption } from '../shared/options.js';
import { validateWith } from '../shared/option-schema.js';
import { DEFAULT_COHERENCE_TTL_SECONDS, LOADER_OPTIONS } from '../stack/vocabulary.js';

import type { CacheOptions } from './types.js';
import type { CoreSettings } from './core.js';
import { loaderChannel } from '../wire/keys.js';
import { l1MaxSizeMbFromEnv, processEnv } from '../shared/env.js';

export const COMPONENT = 'cache';

/** Next's implicit tag of a page path, the one `revalidatePath(path)` invalidates (`_N_T_/blog/post`). */
export function pathTag(path: string): string {
  if (typeof path !== 'string' || !path.startsWith('/')) throw new ConfigError(COMPONENT, 'paths', `entries must start with "/", got ${JSON.stringify(path)}`);
  // As Next: trailing slash removed (but "/" stays), characters outside printable ASCII percent-encoded.
  const trimmed = path.length > 1 ? path.replace(/\/+$/, '') || '/' : path;
  return `_N_T_${trimmed.replace(/[^\t\x20-\x7e]+/g, (run) => encodeURIComponent(run))}`;
}

export function encryptorOf(option: CacheOptions['encryption']): Encryptor | undefined {
  if (option === undefined || option === false) return undefined;
  if (option instanceof Encryptor) return option;
  // Checked by the vocabulary (validateCacheOptions) already; `encryption.tenant` is the deprecated spelling of `tenant`.
  const { tenant: _tenant, ...overrides } = option === true ? {} : option;
  const encryptor = Encryptor.fromEnv(processEnv(), overrides);
  if (!encryptor) throw new ConfigError(COMPONENT, 'encryption.masterKey', 'is required: pass it, or set CACHEKIT_MASTER_KEY (hex, at least 32 bytes)');
  return encryptor;
}

/**
 * Inside a Next.js process (`next build` workers, `next start`, or wherever withCachekit's options are set), entries
 * default to the Next handlers' store and scope, so one app has one cache.
 */
function insideNext(): boolean {
  return insideNextApp();
}

/**
 * The L2 when `backend` is not given: a given stack's (e.g. `CacheHandler.stack` of a handler module of your
 * own), inside Next the handlers', else `setDefaultBackend` and the environment.
 */
function defaultBackend(options: CacheOptions<never[]>): CoreSettings['backend'] {
  if (options.backend !== undefined) return resolveBackend(options.backend);
  const stack = options.stack;
  if (stack !== undefined) return typeof stack === 'function' ? async () => (await stack()).backend : stack.backend;
  if (insideNext()) return async () => (await configuredStack()).backend;
  return resolveBackend(undefined);
}

/** Default key prefix and namespace: a `stack` passed, else the Next handlers' inside Next, else cachekit's. */
export function defaultScope(options: Pick<CacheOptions<never[]>, 'stack'>): { keyPrefix: string; namespace: string } {
  const stack = options.stack && typeof options.stack !== 'function' ? options.stack : undefined;
  if (stack) return { keyPrefix: stack.keyPrefix, namespace: stack.namespace };
  if (insideNext()) {
    const configured = configuredOptions();
    return { keyPrefix: configured.keyPrefix ?? 'cachekit:', namespace: configured.namespace ?? defaultNamespace() };
  }
  return { keyPrefix: 'cachekit:', namespace: 'default' };
}

function envL1Budget(): { maxSizeMb?: number } {
  const maxSizeMb = l1MaxSizeMbFromEnv(processEnv());
  return maxSizeMb === undefined ? {} : { maxSizeMb };
}

/** Validated options shared by `cache` and `cachedFetch`. */
export function coreOptions(options: CacheOptions<never[]>, name: string, extra: { encryption?: Encryptor; interop?: boolean } = {}): CoreSettings {
  const lockTimeoutMs = options.lockTimeoutMs ?? 10_000;
  const scope = defaultScope(options);
  const keyPrefix = stringOption(COMPONENT, 'keyPrefix', options.keyPrefix, scope.keyPrefix);
  const namespace = stringOption(COMPONENT, 'namespace', options.namespace, scope.namespace);
  return {
    backend: defaultBackend(options),
    // CACHEKIT_L1_MAX_SIZE_MB is read here, at the loaders' edge, and passed down as the budget.
    l1: options.l1 === false ? false : { ...options.l1, ...(options.l1?.maxSizeMb === undefined ? envL1Budget() : {}) },
    lock: options.lock ?? true,
    lockTimeoutMs,
    lockWaitMs: options.lockWaitMs ?? lockTimeoutMs,
    breaker: options.breaker ?? true,
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    coherenceTtlSeconds: options.coherenceTtlSeconds ?? DEFAULT_COHERENCE_TTL_SECONDS,
    // Tagged entries without an explicit stack use the Next handlers' one (CACHEKIT_NEXT_OPTIONS, what withCachekit
    // sets), so revalidateTag/updateTag in the app reach them.
    stack: options.stack ?? (options.tags?.length || options.paths?.length ? () => configuredStack() : undefined),
    // Per namespace, as the handlers' channel: apps sharing a store never hear (or flush on) each other's writes.
    channel: loaderChannel({ keyPrefix, namespace }),
    name,
    ...(options.onError ? { onError: options.onError } : {}),
    ...extra,
  };
}

export function validateCacheOptions(options: CacheOptions<never[]>): { ttl: number; staleTtl: number; tags: readonly string[] } {
  validateWith(COMPONENT, LOADER_OPTIONS, options);
  const ttl = options.ttl ?? 300;
  const staleTtl = options.staleTtl ?? 0;
  const tags = options.tags ?? [];
  const paths = options.paths ?? [];
  return { ttl, staleTtl, tags: [...new Set([...tags, ...paths.map(pathTag)])] };
}

/** The interop operation name, checked against the segment rule (Python cachekit's, so both derive one key). */
export function interopSettings<A extends unknown[]>(options: CacheOptions<A>, fnName: string): { namespace: string; operation: string } | undefined {
  const interop = options.interop;
  if (interop === undefined) return undefined;
  const operation = interop.operation ?? fnName;
  for (const [kind, value] of [
    ['namespace', interop.namespace],
    ['operation', operation],
  ] as const) {
    const problem = interopSegmentProblem(kind, value);
    if (problem) throw new ConfigError(COMPONENT, `interop.${kind}`, problem);
  }
  // Entries a Python service writes carry no stored-at time or tags, and their key is derived, never chosen.
  for (const option of ['tags', 'paths', 'staleTtl', 'key', 'namespace'] as const) {
    if (options[option] !== undefined)
      throw new ConfigError(COMPONENT, option, 'does not apply with `interop` (entries are plain values; freshness is the backend TTL)');
  }
  return { namespace: interop.namespace, operation };
}
