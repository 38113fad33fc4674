/**
 * `stats()`: the cache's figures as a plain object, with no dependency. Counting starts with the first call of
 * `stats()` or `registerMetrics()` (register it in instrumentation.ts to count from the process start); the L1 and
 * per-cache figures (kept by every cache anyway) are there from the start.
 */
import { countLookups, subscribe, type BreakerStateName, type CacheKind, type Layer, type LookupOutcome, type TelemetryEvent } from '../shared/telemetry.js';
import { liveStacks } from '../stack/stack.js';
import { singleton } from '../shared/registry.js';
import { backendName } from './labels.js';
import type { MetricsSnapshot } from '../store/metrics.js';

interface OperationFigures {
  calls: number;
  errors: number;
  totalMs: number;
  bytesRead: number;
  bytesWritten: number;
}

export interface CachekitStats {
  /** Since when events are counted (ms since the process started; `performance.now()` clock). */
  countingSinceMs: number;
  /** Lookups by kind: hits by layer, stale answers, misses, and (hits + stale) / lookups. */
  lookups: Partial<Record<CacheKind, { l1Hits: number; l2Hits: number; stale: number; misses: number; hitRatio: number }>>;
  /** L2 operations by backend and operation: calls, errors, mean latency, bytes. */
  l2: Record<string, Record<string, { calls: number; errors: number; meanMs: number; bytesRead: number; bytesWritten: number }>>;
  /** Errors by backend and BackendError kind. */
  errors: Record<string, Record<string, number>>;
  /** Circuit breaker per backend: its last known state and the transitions seen. */
  breakers: Record<string, { state: BreakerStateName; opened: number; transitions: number }>;
  invalidations: { sent: number; received: number; meanLagMs: number };
  revalidations: { hard: number; max: number; durations: number };
  /** Every entry cache of every stack: the counters each cache always keeps, and its L1 evictions. */
  caches: (MetricsSnapshot & { name: string; backend: string; l1Evictions: number })[];
}

export interface LookupRow {
  kind: CacheKind;
  backend: string;
  l1Hits: number;
  l2Hits: number;
  stale: number;
  misses: number;
}

interface Counts {
  since: number;
  /** Per backend, a row for every kind: the hot path's one Map read, one property read and an increment. */
  lookups: Map<string, Record<CacheKind, LookupRow>>;
  l2: Map<string, Map<string, OperationFigures>>;
  errors: Map<string, Map<string, number>>;
  breakers: Map<string, { state: BreakerStateName; opened: number; transitions: number }>;
  invalidations: { sent: number; received: number; lagSamples: number; lagMsTotal: number };
  revalidations: { hard: number; max: number; durations: number };
  evictions: Map<string, number>;
}

function bump<K>(map: Map<K, number>, key: K, by = 1): void {
  map.set(key, (map.get(key) ?? 0) + by);
}

const KINDS: readonly CacheKind[] = ['page', 'route', 'fetch', 'image', 'use-cache', 'loader'];

function countLookup(c: Counts, kind: CacheKind, outcome: LookupOutcome, layer: Layer, backend: string): void {
  let rows = c.lookups.get(backend);
  if (!rows) {
    rows = Object.fromEntries(KINDS.map((k) => [k, { kind: k, backend, l1Hits: 0, l2Hits: 0, stale: 0, misses: 0 }])) as Record<CacheKind, LookupRow>;
    c.lookups.set(backend, rows);
  }
  const row = rows[kind];
  if (outcome === 'miss') row.misses++;
  else if (outcome === 'stale') row.stale++;
  else if (layer === 'l1') row.l1Hits++;
  else row.l2Hits++;
}

function count(c: Counts, event: TelemetryEvent): void {
  switch (event.type) {
    case 'lookup':
      return; // counted by countLookup
    case 'l2': {
      let ops = c.l2.get(event.backend);
      if (!ops) c.l2.set(event.backend, (ops = new Map()));
      let op = ops.get(event.operation);
      if (!op) ops.set(event.operation, (op = { calls: 0, errors: 0, totalMs: 0, bytesRead: 0, bytesWritten: 0 }));
      op.calls++;
      op.totalMs += event.ms;
      op.bytesRead += event.bytesRead;
      op.bytesWritten += event.bytesWritten;
      if (event.errorKind !== null) {
        op.errors++;
        let kinds = c.errors.get(event.backend);
        if (!kinds) c.errors.set(event.backend, (kinds = new Map()));
        bump(kinds, event.errorKind);
      }
      return;
    }
    case 'breaker': {
      let b = c.breakers.get(event.backend);
      if (!b) c.breakers.set(event.backend, (b = { state: 'closed', opened: 0, transitions: 0 }));
      b.state = event.to;
      b.transitions++;
      if (event.to === 'open') b.opened++;
      return;
    }
    case 'invalidation':
      if (event.direction === 'sent') c.invalidations.sent++;
      else c.invalidations.received++;
      if (event.lagMs !== null) {
        c.invalidations.lagSamples++;
        c.invalidations.lagMsTotal += event.lagMs;
      }
      return;
    case 'revalidate':
      c.revalidations[event.profile]++;
      return;
    case 'l1-eviction':
      bump(c.evictions, event.cache);
      return;
  }
}

/** Starts counting (once per process); later calls return the same counts. */
export function startCollecting(): Counts {
  const holder = singleton('stats', (): { counts?: Counts } => ({}));
  if (holder.counts) return holder.counts;
  const counts: Counts = {
    since: performance.now(),
    lookups: new Map(),
    l2: new Map(),
    errors: new Map(),
    breakers: new Map(),
    invalidations: { sent: 0, received: 0, lagSamples: 0, lagMsTotal: 0 },
    revalidations: { hard: 0, max: 0, durations: 0 },
    evictions: new Map(),
  };
  holder.counts = counts;
  countLookups((kind, outcome, layer, backend) => countLookup(counts, kind, outcome, layer, backend));
  subscribe((event) => count(counts, event), { lookups: false });
  return counts;
}

/**
 * The lookup counts per kind and backend that counted something, the Prometheus counter reads them at scrape time (it
 * writes all four outcome series of a row, zeros included, so an outcome's first count is not its baseline). A kind
 * never looked up makes no series: a hit ratio of 0/0 would be NaN.
 */
export function lookupRows(): Iterable<LookupRow> {
  return rowsOf(startCollecting());
}

function* rowsOf(c: Counts): Iterable<LookupRow> {
  for (const rows of c.lookups.values()) {
    for (const row of Object.values(rows)) if (row.l1Hits + row.l2Hits + row.stale + row.misses > 0) yield row;
  }
}

function lookupsByKind(c: Counts): CachekitStats['lookups'] {
  const byKind: CachekitStats['lookups'] = {};
  for (const r of rowsOf(c)) {
    const row = (byKind[r.kind] ??= { l1Hits: 0, l2Hits: 0, stale: 0, misses: 0, hitRatio: 0 });
    row.l1Hits += r.l1Hits;
    row.l2Hits += r.l2Hits;
    row.stale += r.stale;
    row.misses += r.misses;
  }
  for (const row of Object.values(byKind)) {
    const total = row.l1Hits + row.l2Hits + row.stale + row.misses;
    row.hitRatio = total === 0 ? 0 : (row.l1Hits + row.l2Hits + row.stale) / total;
  }
  return byKind;
}

const mapOf = <V, R>(map: Map<string, V>, f: (v: V) => R): Record<string, R> => Object.fromEntries([...map].map(([k, v]) => [k, f(v)]));

/** The figures of this process as a plain object (JSON-serialisable). */
export function stats(): CachekitStats {
  const c = startCollecting();
  const caches = liveStacks().flatMap((stack) =>
    stack.caches.map(({ name, cache }) => ({ name, backend: backendName(stack.backend), l1Evictions: c.evictions.get(name) ?? 0, ...cache.stats() })),
  );
  const breakers = mapOf(c.breakers, (b) => ({ ...b }));
  for (const stack of liveStacks()) {
    const name = backendName(stack.backend);
    if (stack.backend && !breakers[name]) breakers[name] = { state: 'closed', opened: 0, transitions: 0 };
  }
  return {
    countingSinceMs: c.since,
    lookups: lookupsByKind(c),
    l2: mapOf(c.l2, (ops) =>
      mapOf(ops, (op) => ({
        calls: op.calls,
        errors: op.errors,
        meanMs: op.calls === 0 ? 0 : op.totalMs / op.calls,
        bytesRead: op.bytesRead,
        bytesWritten: op.bytesWritten,
      })),
    ),
    errors: mapOf(c.errors, (kinds) => mapOf(kinds, (n) => n)),
    breakers,
    invalidations: {
      sent: c.invalidations.sent,
      received: c.invalidations.received,
      meanLagMs: c.invalidations.lagSamples === 0 ? 0 : c.invalidations.lagMsTotal / c.invalidations.lagSamples,
    },
    revalidations: { ...c.revalidations },
    caches,
  };
}
