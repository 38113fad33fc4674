/**
 * The instrumentation sink every layer calls: cache decisions, L2 calls, breaker transitions, invalidations and
 * revalidations become events for whoever listens (Prometheus adapter, `stats()`, debug log), and spans for a tracer
 * when one is installed (src/observe/tracing.ts). Dependency-free and process-wide (the ESM and CJS builds, and a
 * bundled copy, share one state). With no listener and no tracer every call is one boolean check.
 */
import type { BackendErrorKind } from '../protocol/backend.js';
import { singleton } from './registry.js';

/** What a lookup was for: the Next.js entry kinds, 'use cache' entries, and `cache(fn)` loaders. */
export type CacheKind = 'page' | 'route' | 'fetch' | 'image' | 'use-cache' | 'loader';
export type LookupOutcome = 'hit' | 'stale' | 'miss';
/** Where a hit was found; `none` for a miss. */
export type Layer = 'l1' | 'l2' | 'none';
export type BreakerStateName = 'closed' | 'open' | 'half-open';
/** How a tag was revalidated: expired now (`hard`), stale-while-revalidate (`max`), or with explicit durations. */
export type RevalidateProfile = 'hard' | 'max' | 'durations';

export type TelemetryEvent =
  | { type: 'lookup'; kind: CacheKind; outcome: LookupOutcome; layer: Layer; backend: string; key: string; ms: number }
  | {
      type: 'l2';
      backend: string;
      operation: string;
      ms: number;
      bytesRead: number;
      bytesWritten: number;
      errorKind: BackendErrorKind | null;
      key: string | undefined;
    }
  | { type: 'breaker'; backend: string; from: BreakerStateName; to: BreakerStateName }
  | { type: 'invalidation'; direction: 'sent' | 'received'; lagMs: number | null }
  | { type: 'revalidate'; profile: RevalidateProfile; tags: number }
  | { type: 'l1-eviction'; cache: string };

export type TelemetryListener = (event: TelemetryEvent) => void;

export type SpanAttributes = Record<string, string | number | boolean>;

/** What the tracing adapter installs: spans around async work, and attributes on the current one. */
export interface SpanRunner {
  /**
   * Runs `fn` inside a span named `name` (nested under the active one); the span ends when `fn` settles. `attributes`
   * (or the function giving them) is only read when the span is made. `local`: whether the L1 holds what `fn` looks
   * up; such a lookup gets no span of its own unless the app asked for L1 hit spans (see tracing.ts).
   */
  run<R>(name: string, attributes: SpanAttributes | (() => SpanAttributes), fn: () => Promise<R>, local?: () => boolean): Promise<R>;
  /** Records a lookup's outcome: attributes of our span around it, or an event on the app's span when there is none. */
  annotate(attributes: SpanAttributes): void;
}

/**
 * Counts one lookup without an event: what `stats()` and the Prometheus lookup counter need on every L1 hit is an
 * increment, not an event object, two clock reads and a walk over every listener.
 */
export type LookupCounter = (kind: CacheKind, outcome: LookupOutcome, layer: Layer, backend: string) => void;

/** What a listener receives: every event, or every event but lookups (those are counted by a LookupCounter). */
export interface SubscribeOptions {
  /** @default true */
  lookups?: boolean;
}

interface State {
  /** `true` while at least one listener is registered: call sites check this before building an event. */
  active: boolean;
  /** Listeners of every event, lookups included (the debug log). */
  listeners: TelemetryListener[];
  /** Listeners of every event but lookups (the Prometheus adapter). */
  quiet: TelemetryListener[];
  counters: LookupCounter[];
  /** `true` while a lookup has anyone to tell: a listener of lookups, a counter or a tracer. */
  lookups: boolean;
  tracer: SpanRunner | null;
}

// Read once per module copy: the hot path checks a field, not the registry.
const state: State = singleton('telemetry', (): State => ({ active: false, listeners: [], quiet: [], counters: [], lookups: false, tracer: null }));

function recompute(): void {
  state.active = state.listeners.length > 0 || state.quiet.length > 0;
  state.lookups = state.listeners.length > 0 || state.counters.length > 0 || state.tracer !== null;
}

/** Whether a lookup has anyone to tell: the one check on the hot path. */
export function telemetryOn(): boolean {
  return state.lookups;
}

/**
 * Registers `listener` for every event (with `{ lookups: false }`, for every event but lookups); returns the
 * function that removes it.
 */
export function subscribe(listener: TelemetryListener, options: SubscribeOptions = {}): () => void {
  const list = options.lookups === false ? 'quiet' : 'listeners';
  state[list] = [...state[list], listener];
  recompute();
  return () => {
    state[list] = state[list].filter((l) => l !== listener);
    recompute();
  };
}

/** Registers a counter told of every lookup (kind, outcome, layer, backend); returns the function that removes it. */
export function countLookups(counter: LookupCounter): () => void {
  state.counters = [...state.counters, counter];
  recompute();
  return () => {
    state.counters = state.counters.filter((c) => c !== counter);
    recompute();
  };
}

/** Installs (or, with `null`, removes) the tracer. */
export function setTracer(tracer: SpanRunner | null): void {
  state.tracer = tracer;
  recompute();
}

function tell(listeners: readonly TelemetryListener[], event: TelemetryEvent): void {
  for (const listener of listeners) {
    try {
      listener(event);
    } catch {
      // A failing metrics adapter must never turn a cache call into a page error.
    }
  }
}

export function emit(event: TelemetryEvent): void {
  tell(state.listeners, event);
  if (event.type !== 'lookup') tell(state.quiet, event);
}

/** `performance.now()` when a listener wants a lookup's duration, else 0 (no clock read). Pass it to `lookup`. */
export function lookupStarted(): number {
  return state.listeners.length > 0 ? performance.now() : 0;
}

/** Records where a lookup was answered; returns `value` so a call site can `return lookup(..., null)`. */
export function lookup<V>(kind: CacheKind, outcome: LookupOutcome, layer: Layer, backend: string, key: string, started: number, value: V): V {
  if (!state.lookups) return value;
  if (state.tracer) state.tracer.annotate({ 'cachekit.kind': kind, 'cachekit.outcome': outcome, 'cachekit.layer': layer, 'cachekit.hit': outcome !== 'miss' });
  const counters = state.counters;
  try {
    for (let i = 0; i < counters.length; i++) counters[i]!(kind, outcome, layer, backend);
  } catch {
    // as for listeners: never a page error
  }
  if (state.listeners.length > 0) tell(state.listeners, { type: 'lookup', kind, outcome, layer, backend, key, ms: performance.now() - started });
  return value;
}

/**
 * Runs `fn` in a span when a tracer is installed; otherwise calls it. `attributes` is only called when tracing.
 * `local`: for lookups, whether the L1 holds the entry (then, by default, an event instead of a span).
 */
export function traced<R>(name: string, attributes: () => SpanAttributes, fn: () => Promise<R>, local?: () => boolean): Promise<R> {
  const tracer = state.tracer;
  return tracer ? tracer.run(name, attributes, fn, local) : fn();
}

/** Whether a tracer is installed: call sites skip building their span closures without one. */
export function tracing(): boolean {
  return state.tracer !== null;
}

/** The byte length of what an L2 read returned (bytes, an entry with a TTL, or anything else: 0). */
function bytesOf(result: unknown): number {
  if (result instanceof Uint8Array) return result.byteLength;
  const value = (result as { value?: unknown } | null)?.value;
  return value instanceof Uint8Array ? value.byteLength : 0;
}

/**
 * One L2 call (`run`, already guarded by deadline and breaker): timed, sized and classified for the listeners, in a
 * database client span for the tracer. `written` is the byte length sent (writes).
 */
export function l2Call<R>(backend: string, operation: string, key: string | undefined, written: number, run: () => Promise<R>): Promise<R> {
  if (!state.active && state.tracer === null) return run();
  const timed = async (): Promise<R> => {
    const started = performance.now();
    try {
      const result = await run();
      if (state.active)
        emit({ type: 'l2', backend, operation, ms: performance.now() - started, bytesRead: bytesOf(result), bytesWritten: written, errorKind: null, key });
      return result;
    } catch (error) {
      const kind = (error as { kind?: unknown } | null)?.kind;
      const errorKind: BackendErrorKind = typeof kind === 'string' ? (kind as BackendErrorKind) : 'unknown';
      if (state.active) emit({ type: 'l2', backend, operation, ms: performance.now() - started, bytesRead: 0, bytesWritten: 0, errorKind, key });
      throw error;
    }
  };
  const tracer = state.tracer;
  // OpenTelemetry database client conventions: span named by the operation, the store in db.system.name.
  return tracer ? tracer.run(operation, { 'db.system.name': backend, 'db.operation.name': operation, 'cachekit.span': 'l2' }, timed) : timed();
}

/** Reports a breaker transition. */
export function breakerTransition(backend: string, from: BreakerStateName, to: BreakerStateName): void {
  if (state.active && from !== to) emit({ type: 'breaker', backend, from, to });
}

export function record(event: TelemetryEvent): void {
  if (state.active) emit(event);
}

/** Next's `max` profile expires after a year (its default cacheLife `max`). */
const MAX_PROFILE_EXPIRE_SECONDS = 60 * 60 * 24 * 365;

/** The bounded label of a revalidation: `hard` (expired now), `max`, or other `durations`. */
export function revalidateProfile(durations: { expire?: number } | undefined): RevalidateProfile {
  if (!durations || durations.expire === 0) return 'hard';
  return durations.expire === MAX_PROFILE_EXPIRE_SECONDS ? 'max' : 'durations';
}
