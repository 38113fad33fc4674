/**
 * The one registry of process-wide state. A process can hold several copies of this package (the ESM and CJS builds,
 * and Next bundles a copy into each route and each handler module); state that must be one per process lives here,
 * on one `globalThis` symbol, under a name declared below with the reason it is process-wide. Module-level state
 * that may safely differ per copy (lazy imports of client libraries, memo tables of pure functions) stays local.
 */
const ROOT = Symbol.for('cachekit-next.registry');

/** Every process-wide singleton, with why it must be one per process rather than one per module copy. */
export const SINGLETONS = {
  logger: 'setLogger in any copy replaces the logger of all of them',
  logThrottle: 'rate-limited and once-only messages are limited per process, not per module copy',
  objectIds: 'configuration signatures must number one object alike in every copy',
  defaultBackend: 'setDefaultBackend in one copy is the default of every copy',
  envBackends: 'backends built from the environment are shared: one connection pool per configuration',
  cachekitIOBackends: "cache.io's backend: one CachekitIOBackend (and HTTP pool) per CACHEKIT_* configuration",
  describedBackends: 'one backend per withCachekit backend description, whichever handler module asks',
  backendModules: "the app's backend module is imported once, whichever build imports it",
  stacks: 'one CacheStack per configuration: both handlers (constructed per request), the loaders and both builds',
  configuredOptions: 'CACHEKIT_NEXT_OPTIONS parsed (and its backend module resolved) once per value',
  standaloneConfigLookedUp: "a standalone server's config is searched for built options once per value",
  withCachekitOptions: 'what withCachekit wrote, so a second evaluation of next.config is not taken for a hand-set value',
  requestGeneration: 'requests begun in this process, counted by every handler copy for the epoch reads',
  redisConnections: 'one reference-counted Redis connection set per configuration per process',
  cachedCores: 'a module-scope cache(fn) bundled into every route shares one core (L1, single flight, statistics)',
  breakers: 'one circuit breaker per backend object: every cache over it trips and recovers together',
  coherenceBuses: 'one invalidation subscription per backend object and channel',
  telemetry: "one set of listeners and one tracer: every copy's cache calls reach the metrics registered in any copy",
  debugLog: 'CACHEKIT_DEBUG starts one debug listener per process, not one per copy',
  tracing: '@opentelemetry/api is imported and the tracer installed once, whichever copy sees the provider first',
  stats: "one set of counts behind stats() and the lookups counter, whichever copy's route reads them",
  prometheus: 'metrics are registered once per registry, and the route serves the first registry, from any copy',
} as const;

export type SingletonName = keyof typeof SINGLETONS;

interface Registry {
  values: Map<SingletonName, unknown>;
  /** How to release a value on reset (e.g. close stacks), for the values that hold resources. */
  disposers: Map<SingletonName, (value: never) => unknown>;
}

function registry(): Registry {
  const holder = globalThis as { [ROOT]?: Registry };
  return (holder[ROOT] ??= { values: new Map(), disposers: new Map() });
}

/** The process's `name` singleton, created by `create` on first use in any copy of the package. */
export function singleton<T>(name: SingletonName, create: () => T, dispose?: (value: T) => unknown): T {
  const { values, disposers } = registry();
  if (!values.has(name)) {
    values.set(name, create());
    if (dispose) disposers.set(name, dispose as (value: never) => unknown);
  }
  return values.get(name) as T;
}

/** The names created so far in this process (tests, diagnostics). */
export function singletonNames(): SingletonName[] {
  return [...registry().values.keys()];
}

/**
 * Forgets every singleton of the process (stacks are closed first), so the next use starts from scratch: the
 * default backend, the logger, memoised backends, stacks and loader cores. For tests.
 */
export async function resetForTests(): Promise<void> {
  const { values, disposers } = registry();
  const pending = [...disposers].map(([name, dispose]) => (values.has(name) ? dispose(values.get(name) as never) : undefined));
  values.clear();
  disposers.clear();
  await Promise.all(pending);
}
