/**
 * Prometheus metrics through prom-client (an optional peer dependency, imported lazily), registered on the registry the
 * app passes or prom-client's default one. Labels are a bounded vocabulary (kind, layer, outcome, backend, operation,
 * error kind, breaker state, profile): never a key, a tag or a path, so a million keys add no series.
 */
import { BACKEND_ERROR_KINDS } from '../protocol/backend.js';
import { subscribe, type TelemetryEvent } from '../shared/telemetry.js';
import { liveStacks } from '../stack/stack.js';
import { lookupRows, startCollecting, stats } from './collector.js';
import { backendName } from './labels.js';
import { singleton } from '../shared/registry.js';

type PromClient = typeof import('prom-client');
type Registry = import('prom-client').Registry;

export interface MetricsOptions {
  /** The registry to register on. @default prom-client's default registry */
  registry?: Registry;
  /** Prefix of every metric name. @default 'cachekit_' */
  prefix?: string;
  /** Buckets of the L2 latency histogram, in seconds. */
  latencyBuckets?: number[];
}

const DEFAULT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const LAG_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const BREAKER_VALUE = { closed: 0, 'half-open': 1, open: 2 } as const;
/** The operations and kinds an L2 error series is started at 0 for, per backend (bounded: 5 x 5). */
const ERROR_OPERATIONS = ['get', 'set', 'delete', 'tag_read', 'tag_write'];

interface PromState {
  /** Registries already carrying our metrics (registering twice would throw). */
  registered: WeakSet<Registry>;
  /** The registry the metrics route serves: the first one registered. */
  served: Registry | undefined;
}
const state: PromState = singleton('prometheus', (): PromState => ({ registered: new WeakSet(), served: undefined }));

export class MissingPeerError extends Error {
  constructor(name: string, cause: unknown) {
    super(`[cachekit] ${name} is not installed: \`npm install ${name}\` to export metrics (stats() needs nothing)`, { cause });
    this.name = 'MissingPeerError';
  }
}

export async function loadPromClient(): Promise<PromClient> {
  try {
    const mod = (await import('prom-client')) as PromClient & { default?: PromClient };
    return mod.Counter ? mod : (mod.default as PromClient);
  } catch (error) {
    throw new MissingPeerError('prom-client', error);
  }
}

/** Cache names as a label: the handler caches by name, every `cache(fn)` cache as `loader`. */
const cacheLabel = (name: string) => (name.startsWith('cachekit-next') ? name : 'loader');

/**
 * Registers cachekit's metrics on `options.registry` (or prom-client's default registry) and starts counting; once
 * per registry. Resolves the registry.
 */
export async function registerMetrics(options: MetricsOptions = {}): Promise<Registry> {
  const prom = await loadPromClient();
  const registry = options.registry ?? prom.register;
  state.served ??= registry;
  if (state.registered.has(registry)) return registry;
  state.registered.add(registry);
  startCollecting();
  const p = options.prefix ?? 'cachekit_';
  const on = { registers: [registry] };

  // Read from the collector's counts at scrape time: the hot path (an L1 hit) pays one Map increment, no label hashing.
  new prom.Counter({
    name: `${p}lookups_total`,
    help: 'Cache lookups by kind, layer answering and outcome',
    labelNames: ['kind', 'layer', 'outcome', 'backend'],
    ...on,
    collect() {
      this.reset();
      for (const r of lookupRows()) {
        const add = (layer: string, outcome: string, n: number) => this.inc({ kind: r.kind, layer, outcome, backend: r.backend }, n);
        add('l1', 'hit', r.l1Hits);
        add('l2', 'hit', r.l2Hits);
        add('l2', 'stale', r.stale);
        add('none', 'miss', r.misses);
      }
    },
  });
  const l2Duration = new prom.Histogram({
    name: `${p}l2_operation_duration_seconds`,
    help: 'Latency of L2 operations (get, set, delete, tag_read, tag_write...)',
    labelNames: ['backend', 'operation', 'outcome'],
    buckets: options.latencyBuckets ?? DEFAULT_BUCKETS,
    ...on,
  });
  const bytesRead = new prom.Counter({ name: `${p}l2_read_bytes_total`, help: 'Bytes read from the L2', labelNames: ['backend', 'operation'], ...on });
  const bytesWritten = new prom.Counter({ name: `${p}l2_written_bytes_total`, help: 'Bytes written to the L2', labelNames: ['backend', 'operation'], ...on });
  // Series that exist (at 0) before their first event: Prometheus takes a series' first sample as the baseline, so
  // the first burst of errors or transitions of a series born with it would never show in rate() or increase().
  const zeroed = new Set<string>();
  const zeroFor = (backend: string) => {
    if (zeroed.has(backend)) return;
    zeroed.add(backend);
    for (const operation of ERROR_OPERATIONS) for (const kind of BACKEND_ERROR_KINDS) errors.inc({ backend, operation, error_kind: kind }, 0);
    for (const to of Object.keys(BREAKER_VALUE)) transitions.inc({ backend, to }, 0);
  };
  const zeroLiveBackends = () => {
    for (const stack of liveStacks()) if (stack.backend) zeroFor(backendName(stack.backend));
  };
  const errors = new prom.Counter({
    name: `${p}l2_errors_total`,
    help: 'L2 failures by BackendError kind',
    labelNames: ['backend', 'operation', 'error_kind'],
    ...on,
    collect: zeroLiveBackends,
  });
  const transitions = new prom.Counter({
    name: `${p}breaker_transitions_total`,
    help: 'Circuit breaker transitions by new state',
    labelNames: ['backend', 'to'],
    ...on,
    collect: zeroLiveBackends,
  });
  new prom.Gauge({
    name: `${p}breaker_state`,
    help: 'Circuit breaker state: 0 closed, 1 half-open, 2 open',
    labelNames: ['backend'],
    ...on,
    collect() {
      this.reset();
      for (const [backend, b] of Object.entries(stats().breakers)) this.set({ backend }, BREAKER_VALUE[b.state]);
    },
  });
  const messages = new prom.Counter({
    name: `${p}invalidation_messages_total`,
    help: 'Invalidation messages sent and received',
    labelNames: ['direction'],
    ...on,
  });
  const lag = new prom.Histogram({
    name: `${p}invalidation_lag_seconds`,
    help: 'Time from sending an invalidation to its receipt',
    buckets: LAG_BUCKETS,
    ...on,
  });
  const revalidations = new prom.Counter({
    name: `${p}revalidations_total`,
    help: 'Tag revalidations by profile (hard, max, durations)',
    labelNames: ['profile'],
    ...on,
  });
  const evictions = new prom.Counter({
    name: `${p}l1_evictions_total`,
    help: 'L1 entries evicted for space',
    labelNames: ['cache'],
    ...on,
    collect() {
      for (const stack of liveStacks()) for (const { name } of stack.caches) this.inc({ cache: cacheLabel(name) }, 0);
    },
  });
  for (const direction of ['sent', 'received']) messages.inc({ direction }, 0);
  for (const profile of ['hard', 'max', 'durations']) revalidations.inc({ profile }, 0);
  const l1Figure = (name: string, help: string, pick: (s: { l1Bytes: number; l1Entries: number }) => number) =>
    new prom.Gauge({
      name,
      help,
      labelNames: ['cache', 'backend'],
      ...on,
      collect() {
        this.reset();
        for (const stack of liveStacks()) {
          for (const { name: cache, cache: entries } of stack.caches)
            this.inc({ cache: cacheLabel(cache), backend: backendName(stack.backend) }, pick(entries.stats()));
        }
      },
    });
  l1Figure(`${p}l1_bytes`, 'Bytes held by the L1', (s) => s.l1Bytes);
  l1Figure(`${p}l1_entries`, 'Entries held by the L1', (s) => s.l1Entries);

  const handle = (event: TelemetryEvent): void => {
    switch (event.type) {
      case 'l2':
        l2Duration.observe({ backend: event.backend, operation: event.operation, outcome: event.errorKind === null ? 'ok' : 'error' }, event.ms / 1000);
        if (event.bytesRead > 0) bytesRead.inc({ backend: event.backend, operation: event.operation }, event.bytesRead);
        if (event.bytesWritten > 0) bytesWritten.inc({ backend: event.backend, operation: event.operation }, event.bytesWritten);
        if (event.errorKind !== null) errors.inc({ backend: event.backend, operation: event.operation, error_kind: event.errorKind });
        return;
      case 'breaker':
        transitions.inc({ backend: event.backend, to: event.to });
        return;
      case 'invalidation':
        messages.inc({ direction: event.direction });
        if (event.lagMs !== null) lag.observe(event.lagMs / 1000);
        return;
      case 'revalidate':
        revalidations.inc({ profile: event.profile });
        return;
      case 'l1-eviction':
        evictions.inc({ cache: cacheLabel(event.cache) });
        return;
    }
  };
  subscribe(handle, { lookups: false }); // lookups: read from the collector's counts at scrape time
  return registry;
}

/** The registry the metrics route serves (registering on prom-client's default one first if none was). */
export async function servedRegistry(): Promise<Registry> {
  return state.served ?? (await registerMetrics());
}
