/**
 * The one options vocabulary of cachekit-next: every option of the Next handlers (`CachekitNextOptions`,
 * `withCachekit`) and of the loaders (`cache(fn)`, `cachedFetch`), declared once with its doc line, default and check.
 * A knob both have (backend, key scope, L1, coherence, deadline, breaker, encryption, error hook) is one entry of
 * COMMON, so it has one name, one shape and one default everywhere. The known-name lists derive from these schemas.
 */
import { isBackend } from '../protocol/backend.js';
import { booleanOption, ConfigError, DEFAULT_TIMEOUT_MS, describe, numberOption, stringOption } from '../shared/options.js';
import { nested, omit, pick, type OptionSpec, type Schema } from '../shared/option-schema.js';
import { Encryptor } from '../wire/encryption.js';
import { interopSegmentProblem } from '../wire/interop.js';
import type { BreakerOptions } from '../store/breaker.js';
import { warnOnce } from '../shared/log.js';

export { DEFAULT_TIMEOUT_MS };
/** Worst-case cross-instance staleness where no invalidation message or epoch read reaches an L1 copy. */
export const DEFAULT_COHERENCE_TTL_SECONDS = 1;
export const DEFAULT_L1_MAX_SIZE_MB = 100;

const positive = (component: string, name: string, value: unknown) => void numberOption(component, name, value, 0, { min: 0, minInclusive: false });
const string = (component: string, name: string, value: unknown) => void stringOption(component, name, value, '');
const boolean = (component: string, name: string, value: unknown) => void booleanOption(component, name, value, false);
const fn = (component: string, name: string, value: unknown) => {
  if (typeof value !== 'function') throw new ConfigError(component, name, `must be a function, got ${describe(value)}`);
};
const spec = (doc: string, dflt: string, check: OptionSpec['check']): OptionSpec => ({ doc, default: dflt, check });

const L1: Schema = {
  maxSizeMb: spec(
    'Byte budget of the in-memory L1, in MiB: what its copies hold in memory, decoded (not their stored size).',
    `CACHEKIT_L1_MAX_SIZE_MB or ${DEFAULT_L1_MAX_SIZE_MB}`,
    positive,
  ),
  maxTtlSeconds: spec('Longest an L1 copy lives, whatever its L2 TTL, in seconds.', 'the entry TTL (see coherenceTtlSeconds)', (c, n, v) => {
    numberOption(c, n, v, 0, { min: 0, minInclusive: false, allowInfinity: true });
  }),
};

const BREAKER: Schema = {
  failureThreshold: spec('Consecutive transient/timeout failures that open the circuit.', '5', (c, n, v) => {
    numberOption(c, n, v, 0, { min: 1, integer: true });
  }),
  cooldownMs: spec('How long an open circuit fails calls at once before one probe, in ms.', '2000', positive),
};

const ENCRYPTION_KEYS: Schema = {
  masterKey: spec('The master key: bytes or hex, at least 32 bytes.', 'CACHEKIT_MASTER_KEY', (c, n, v) => {
    if (typeof v !== 'string' && !(v instanceof Uint8Array)) throw new ConfigError(c, n, `must be hex or bytes, got ${describe(v)}`);
  }),
  previousMasterKeys: spec('Keys still accepted for reading after a rotation (at most 3).', 'CACHEKIT_PREVIOUS_MASTER_KEYS or []', (c, n, v) => {
    if (!Array.isArray(v)) throw new ConfigError(c, n, `must be an array, got ${describe(v)}`);
  }),
  failClosed: spec('A value that fails to decrypt is an error instead of a miss.', 'CACHEKIT_ENCRYPTION_FAIL_CLOSED or false', boolean),
  // Deprecated (handlers only had it): the tenant is the top-level `tenant` option, as for the loaders.
  tenant: spec('Deprecated alias of the top-level `tenant`.', 'the namespace', string),
};
const encryptionCheck = nested(ENCRYPTION_KEYS, 'true, false, an Encryptor or { masterKey, previousMasterKeys, failClosed }');

/** Options the handlers and the loaders share: one name, one shape, one default. */
export const COMMON = {
  backend: spec(
    'The L2; `null` = L1 only (per process).',
    "the stack's; inside Next the handlers'; else setDefaultBackend > environment > embedded File",
    (c, n, v) => {
      if (v !== null && !isBackend(v)) throw new ConfigError(c, n, 'must implement get, set, delete, exists and healthCheck, or be null for L1-only');
    },
  ),
  keyPrefix: spec('Prefix of every key.', "'cachekit:'", string),
  namespace: spec(
    'Key scope: two apps on one store never share entries, tags or messages.',
    "the app's package.json name inside Next; a loader outside Next: 'default'",
    string,
  ),
  l1: spec(
    'The in-memory L1 in front of the backend, or `false` for none.',
    `{ maxSizeMb: ${DEFAULT_L1_MAX_SIZE_MB} }`,
    nested(L1, '{ maxSizeMb, maxTtlSeconds } or false', true),
  ),
  coherenceTtlSeconds: spec(
    'Without invalidation messages: the longest local state (L1 copy, tag state) is trusted unannounced, in seconds.',
    String(DEFAULT_COHERENCE_TTL_SECONDS),
    positive,
  ),
  timeoutMs: spec('Deadline of every L2 call in ms; past it the call is a miss.', String(DEFAULT_TIMEOUT_MS), positive),
  breaker: spec('Circuit breaker on the backend: `true`, its settings, or `false`.', 'true ({ failureThreshold: 5, cooldownMs: 2000 })', (c, n, v) => {
    if (typeof v !== 'boolean') nested(BREAKER, 'true, false or { failureThreshold, cooldownMs }')(c, n, v);
  }),
  encryption: spec('AES-256-GCM under per-tenant keys: `true` (keys from the environment), an Encryptor, or its settings.', 'false', (c, n, v) => {
    if (typeof v !== 'boolean' && !(v instanceof Encryptor)) encryptionCheck(c, n, v);
  }),
  onError: spec('Receives every backend fault turned into a miss or a skipped write.', 'logged, rate limited', fn),
} satisfies Schema;

const COMPRESSION: Schema = {
  algorithm: spec('Compression algorithm.', "'lz4'", (c, n, v) => {
    if (!['lz4', 'deflate'].includes(v as string)) throw new ConfigError(c, n, `must be 'lz4' or 'deflate', got ${JSON.stringify(v)}`);
  }),
  thresholdBytes: spec('Entries smaller than this are stored uncompressed (`false`: never compress).', '4096', (c, n, v) => {
    if (v !== false) numberOption(c, n, v, 0, { min: 0 });
  }),
  level: spec('Compression level, 1 (fast) to 9.', '1', (c, n, v) => void numberOption(c, n, v, 0, { min: 1, max: 9, integer: true })),
};

/** `CachekitNextOptions` (createCacheHandler, createUseCacheHandler, getStack). */
export const HANDLER_OPTIONS = {
  ...COMMON,
  tenant: spec('Tenant of the encryption keys.', 'the namespace', (c, n, v) => {
    if (typeof v !== 'string' || v === '') throw new ConfigError(c, n, `must be a non-empty string, got ${describe(v)}`);
  }),
  deploymentId: spec('Scopes page and route entries to one deployment.', "NEXT_DEPLOYMENT_ID, else the build's BUILD_ID", string),
  useCacheL1: spec("The 'use cache' entries' own L1, or `false`.", 'the `l1` setting', nested(L1, '{ maxSizeMb, maxTtlSeconds } or false', true)),
  readYourWrites: spec('Read the invalidation epoch once per request on backends without messages.', 'true', boolean),
  regenerationLeaseMs: spec(
    'One regeneration per stale entry across the fleet (backends with locks): the lease of the instance that regenerates, in ms; 0 = every instance regenerates.',
    '15000',
    (c, n, v) => void numberOption(c, n, v, 0, { min: 0 }),
  ),
  regenerationWaitMs: spec(
    'An expired entry (hard revalidateTag) is regenerated by the lease holder: how long the other instances wait for it, in ms; 0 = each renders at once.',
    '5000 (at most regenerationLeaseMs)',
    (c, n, v) => void numberOption(c, n, v, 0, { min: 0 }),
  ),
  maxTtlSeconds: spec('The longest TTL any entry gets, in seconds; also how long tag state outlives its event.', '2592000 (30 days)', (c, n, v) => {
    numberOption(c, n, v, 0, { min: 1 });
  }),
  compression: spec(
    'Compression of stored entries, or `false`.',
    '{ thresholdBytes: 4096, level: 1 }',
    nested(COMPRESSION, '{ algorithm, thresholdBytes, level } or false', true),
  ),
  warmStart: spec("Seed the store from the build's prerendered output on first use.", 'false', boolean),
  mergeRequests: spec(
    "An L1 hit of a page, route or image answers after one event-loop turn, so that Next's ResponseCache merges the concurrent requests for it.",
    'true',
    boolean,
  ),
} satisfies Schema;

/** `withCachekit` options: the handlers', minus the function-valued ones (they cannot reach Next's workers). */
export const WITH_CACHEKIT_OPTIONS = omit(HANDLER_OPTIONS, ['onError']);

// The segment rule is Python cachekit's, so both SDKs derive one key.
const segment =
  (kind: 'namespace' | 'operation') =>
  (c: string, n: string, v: unknown): void => {
    const problem = interopSegmentProblem(kind, v);
    if (problem) throw new ConfigError(c, n, problem);
  };
const INTEROP: Schema = {
  namespace: spec('Python cachekit namespace.', 'required', segment('namespace')),
  operation: spec('Operation name.', 'the function name', segment('operation')),
};
const strings = (what: string) => (c: string, n: string, v: unknown) => {
  if (!Array.isArray(v) || v.some((item) => typeof item !== 'string' || item === '')) throw new ConfigError(c, n, `must be an array of ${what}`);
};

/** `CacheOptions` (cache(fn)); cachedFetch takes a subset. */
export const LOADER_OPTIONS = {
  ...COMMON,
  tenant: spec('Tenant of the encryption keys: a string, or a function of the arguments.', "'default'", (c, n, v) => {
    if ((typeof v !== 'string' || v === '') && typeof v !== 'function')
      throw new ConfigError(c, n, 'must be a non-empty string or a function of the arguments');
  }),
  ttl: spec('Seconds an entry is fresh (and, without staleTtl, stored).', '300', positive),
  staleTtl: spec('Seconds after ttl the old value is served while one call refreshes it.', '0', (c, n, v) => void numberOption(c, n, v, 0, { min: 0 })),
  tags: spec('Tags of every entry (revalidateTag/updateTag invalidate it).', '[]', strings('non-empty strings')),
  paths: spec('Pages whose revalidatePath invalidates the entries.', '[]', (c, n, v) => {
    if (!Array.isArray(v)) throw new ConfigError(c, n, 'must be an array of page paths ("/blog")');
  }),
  interop: spec('Shares entries with a Python cachekit service: { namespace, operation }.', 'none', nested(INTEROP, '{ namespace, operation }')),
  name: spec('Function name in the key.', 'fn.name', string),
  key: spec('Explicit key: a string, or a function of the arguments.', 'the argument hash', (c, n, v) => {
    if (typeof v !== 'string' && typeof v !== 'function') throw new ConfigError(c, n, 'must be a string or a function of the arguments');
  }),
  lock: spec('Cross-instance stampede lock where the backend offers locks.', 'true', boolean),
  lockTimeoutMs: spec('Lease of that lock in ms.', '10000', positive),
  lockWaitMs: spec('Longest a waiter polls before computing itself, in ms.', 'lockTimeoutMs', (c, n, v) => void numberOption(c, n, v, 0, { min: 0 })),
  stack: spec('Tag store of `tags`: a CacheStack, or a function returning one.', "with tags, the Next handlers' stack", (c, n, v) => {
    if (v === null || (typeof v !== 'function' && typeof v !== 'object')) throw new ConfigError(c, n, 'must be a CacheStack or a function returning one');
  }),
} satisfies Schema;

/** The loader options `cachedFetch` takes next to RequestInit (the rest of its init goes to fetch). */
export const CACHED_FETCH_OPTIONS = pick(LOADER_OPTIONS, [
  'ttl',
  'staleTtl',
  'tags',
  'namespace',
  'keyPrefix',
  'backend',
  'stack',
  'lockTimeoutMs',
  'lockWaitMs',
]);

/** The breaker settings of a `breaker` option that is not `false` (`true` or absent: the defaults). */
export function breakerSettings(option: boolean | BreakerOptions | undefined): BreakerOptions | undefined {
  return typeof option === 'object' ? option : undefined;
}

/** `encryption.tenant`, the former spelling of `tenant`: still honoured, with a one-time warning naming `tenant`. */
export function deprecatedTenant(component: string, encryption: unknown): string | undefined {
  if (encryption === null || typeof encryption !== 'object' || encryption instanceof Encryptor) return undefined;
  const tenant = (encryption as { tenant?: string }).tenant;
  if (tenant !== undefined) {
    warnOnce(`deprecated:${component}:encryption.tenant`, `[cachekit] ${component}: option \`encryption.tenant\` is deprecated: use \`tenant\` (same value)`);
  }
  return tenant;
}
