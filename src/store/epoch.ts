/**
 * The invalidation epoch: read-your-own-writes across instances over backends without invalidation messages
 * (Memcached, File, CachekitIO, custom ones).
 *
 * Every announced change (a write, a delete, a tag event) bumps one small counter in the L2 and leaves a journal entry
 * naming what changed; an instance reads the counter once per request (or per get, see `synced`), and when it moved,
 * reads the new journal entries and drops exactly those L1 copies and tag states. A missing entry (not written yet,
 * evicted) is retried by the next read and, past `maxAgeMs`, costs a full flush: never a silent miss.
 *
 * Backends with an atomic counter (`incr`: Memcached, File, memory) keep a journal ring of {@link RING} slots under
 * `<key>:<slot>`. Others (CachekitIO, custom backends without `incr`) store a token instead, and any change flushes
 * every other instance's local state at its next read.
 */
import { hasBatch, hasCounter, type Backend } from '../protocol/backend.js';
import { runOutsideAsyncContext } from '../shared/async-context.js';
import { nowMs } from '../shared/clock.js';
import { singleton } from '../shared/registry.js';
import { journalSlotKey } from '../wire/keys.js';
import type { GuardedCall } from './l2-guard.js';

/** What changed: entry keys and tags. */
export interface EpochEvent {
  keys?: readonly string[];
  tags?: readonly string[];
}

export interface EpochTarget {
  /** Entries under `keys` changed elsewhere. */
  keys(keys: string[]): void;
  /** The states of `tags` changed elsewhere. */
  tags(tags: string[]): void;
  /** Changes may have been missed: drop everything local. */
  flush(): void;
}

export interface EpochOptions {
  backend: Backend;
  /** The counter's key; journal slots are `<key>:<slot>`. */
  key: string;
  /** This instance's id: its own journal entries are skipped (it applied them when it made them). */
  origin: string;
  /**
   * How long local state is trusted without a successful read, in ms: the bound when no request signals a read
   * (`synced`), and while the store cannot be read.
   */
  maxAgeMs: number;
  /** Every store call goes through this (the L2 guard: deadline, breaker). */
  call: GuardedCall;
  onError: (error: unknown, operation: string) => void;
  target: EpochTarget;
}

/** Journal slots per counter: an instance that fell further behind flushes instead of reading them all. */
export const RING = 256;
/** Journal entries outlive their slot's reuse only by accident; this keeps a dead app's entries from lingering. */
const JOURNAL_TTL_SECONDS = 3_600;

const generation = () => singleton('requestGeneration', () => ({ n: 0 }));

/**
 * A request began in this process (Next constructs the legacy handler per request; 'use cache' calls refreshTags):
 * reads after this must not rely on an epoch read that started before it.
 */
export function requestBegan(): void {
  generation().n++;
}

/** How many requests began so far (0: nothing signals requests in this process). */
export function requestGeneration(): number {
  return generation().n;
}

interface Flight {
  promise: Promise<void>;
  /** The request generation when the read started. */
  generation: number;
  done: boolean;
}

interface JournalEntry {
  n: number;
  o: string;
  k?: string[];
  t?: string[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Epoch {
  readonly mode: 'counter' | 'token';
  readonly #options: EpochOptions;
  /** The counter (or token) at the last read; `undefined` before the first successful one. */
  #last: number | string | null | undefined;
  /** Journal slots seen missing, with when first seen: retried by every read, a flush once older than maxAgeMs. */
  readonly #missing = new Map<number, number>();
  /** Start of the last successful read (or of the flush after failed ones). */
  #trustedAt = -Infinity;
  #latest: Flight | null = null;
  #first: Flight | undefined;
  #queued: Promise<void> | null = null;
  #batch: { keys: Set<string>; tags: Set<string>; promise: Promise<void> } | null = null;
  #tokens = 0;
  /** Counter reads, journal reads, bumps and flushes: for metrics, tests and the benchmark. */
  readonly stats = { reads: 0, journalReads: 0, bumps: 0, flushes: 0, applied: 0 };

  constructor(options: EpochOptions) {
    this.#options = options;
    this.mode = hasCounter(options.backend) ? 'counter' : 'token';
  }

  /**
   * Tells every other instance that `event` happened (after it happened: the caller awaits its own store writes
   * first). Calls in one turn of the event loop share one bump. Never throws: a fault is reported.
   */
  announce(event: EpochEvent): Promise<void> {
    let batch = this.#batch;
    if (!batch) {
      const created = { keys: new Set<string>(), tags: new Set<string>(), promise: Promise.resolve() };
      created.promise = Promise.resolve().then(() => {
        this.#batch = null;
        return this.#bump(created.keys, created.tags);
      });
      this.#batch = batch = created;
    }
    for (const key of event.keys ?? []) batch.keys.add(key);
    for (const tag of event.tags ?? []) batch.tags.add(tag);
    return batch.promise;
  }

  async #bump(keys: Set<string>, tags: Set<string>): Promise<void> {
    const { backend, key, origin, call } = this.#options;
    try {
      if (hasCounter(backend)) {
        // A counter lost to eviction restarts at the clock, far ahead of what any reader saw: they flush, never miss.
        const n = await call('epochWrite', () => backend.incr(key, Math.floor(nowMs())));
        const entry: JournalEntry = { n, o: origin };
        if (keys.size > 0) entry.k = [...keys];
        if (tags.size > 0) entry.t = [...tags];
        await call('epochWrite', () => backend.set(slotKey(key, n), encoder.encode(JSON.stringify(entry)), JOURNAL_TTL_SECONDS));
      } else {
        const token = `${origin}:${++this.#tokens}`;
        await call('epochWrite', () => backend.set(key, encoder.encode(token)));
      }
      this.stats.bumps++;
    } catch (error) {
      this.#options.onError(error, 'announce');
    }
  }

  /**
   * Reads the epoch and applies what moved, with a read that started after this call, or one in flight that started
   * in the same request generation (concurrent callers of one request share it). One read at a time: later callers
   * queue behind the one in flight and share the next.
   */
  sync(): Promise<void> {
    // A read outlives the request that started it (later requests join it): it must not keep that request alive.
    return runOutsideAsyncContext(() => this.#sync());
  }

  #sync(): Promise<void> {
    const latest = this.#latest;
    if (latest === null || latest.done) return this.#start();
    if (latest.generation === requestGeneration()) return latest.promise;
    return (this.#queued ??= latest.promise.then(() => {
      this.#queued = null;
      return this.#start();
    }));
  }

  /**
   * Like `sync`, but a finished read of the current request generation also counts, as long as it is younger than
   * maxAgeMs: `undefined` when nothing needs to be awaited. Where nothing signals requests, this reads at most once
   * per maxAgeMs.
   */
  synced(): Promise<void> | undefined {
    const latest = this.#latest;
    if (latest && latest.generation === requestGeneration() && nowMs() - this.#trustedAt <= this.#options.maxAgeMs) {
      return latest.done ? undefined : latest.promise;
    }
    return this.sync();
  }

  /**
   * The first read while it runs (it flushes the target: whatever was cached before it is unprotected), then
   * `undefined`. Writers wait for it, so that their L1 copies are not flushed right after they were made.
   */
  baseline(): Promise<void> | undefined {
    const first = this.#first;
    return first && !first.done ? first.promise : undefined;
  }

  /** `undefined` when a read started within maxAgeMs, else a read: the bound for reads no request announced. */
  fresh(): Promise<void> | undefined {
    return nowMs() - this.#trustedAt <= this.#options.maxAgeMs ? undefined : this.sync();
  }

  #start(): Promise<void> {
    const flight: Flight = { promise: Promise.resolve(), generation: requestGeneration(), done: false };
    flight.promise = this.#read().finally(() => {
      flight.done = true;
    });
    this.#latest = flight;
    this.#first ??= flight;
    return flight.promise;
  }

  async #read(): Promise<void> {
    const startedAt = nowMs();
    const { backend, key, call } = this.#options;
    try {
      const raw = await call('epochRead', () => backend.get(key));
      this.stats.reads++;
      if (this.mode === 'token') this.#token(raw === null ? null : decoder.decode(raw));
      else await this.#counter(raw === null ? 0 : Number(decoder.decode(raw)));
      this.#trustedAt = startedAt;
    } catch (error) {
      this.#options.onError(error, 'epoch');
      // Unreadable: keep local state for maxAgeMs (as long as without the epoch), then drop it.
      if (nowMs() - this.#trustedAt > this.#options.maxAgeMs) {
        this.#flush();
        this.#trustedAt = nowMs();
      }
    }
  }

  #token(token: string | null): void {
    if (this.#last === undefined || token !== this.#last) this.#flush();
    this.#last = token;
  }

  async #counter(n: number): Promise<void> {
    const last = this.#last;
    const valid = Number.isSafeInteger(n) && n >= 0;
    // Start over (drop everything local) on the first read (anything cached before it was unprotected), a reset
    // counter, when too far behind, and when the counter was created since the last read (it was absent). A new
    // counter starts at an unknown value (the clock), and a slot without an entry may as well be from before it
    // existed as be one of its first changes whose writer is still between incr and the journal write: reading the
    // ring and skipping the missing slots below the first entry found lost exactly those changes, for good.
    if (!valid || typeof last !== 'number' || n < last || (last === 0 ? n > 0 : n - last > RING)) {
      this.#last = valid ? n : undefined;
      this.#flush();
      return;
    }
    const slots = [...this.#missing.keys()];
    for (let slot = last + 1; slot <= n; slot++) if (!this.#missing.has(slot)) slots.push(slot);
    if (slots.length === 0) return;
    const { backend, key, call } = this.#options;
    const keys = slots.map((slot) => slotKey(key, slot));
    const values = await call('epochRead', () => (hasBatch(backend) ? backend.getMany(keys) : Promise.all(keys.map((k) => backend.get(k)))));
    this.stats.journalReads++;
    this.#last = n;
    const now = nowMs();
    let lost = false;
    slots.forEach((slot, i) => {
      const entry = parseEntry(values[i] ?? null, slot);
      if (entry) {
        this.#missing.delete(slot);
        if (entry.o !== this.#options.origin) this.#apply(entry);
        return;
      }
      // Not written yet (its writer is between incr and set) or gone (evicted, overwritten): retried, then a flush.
      const since = this.#missing.get(slot);
      if (since === undefined) this.#missing.set(slot, now);
      else if (now - since > this.#options.maxAgeMs) lost = true;
    });
    if (lost || this.#missing.size > RING) this.#flush();
  }

  #apply(entry: JournalEntry): void {
    this.stats.applied++;
    const { target } = this.#options;
    if (entry.k && entry.k.length > 0) target.keys(entry.k);
    if (entry.t && entry.t.length > 0) target.tags(entry.t);
  }

  #flush(): void {
    this.#missing.clear();
    this.stats.flushes++;
    this.#options.target.flush();
  }
}

function slotKey(key: string, n: number): string {
  return journalSlotKey(key, n % RING);
}

/** The journal entry of slot `n`, or `null` when the slot holds nothing, something else, or another round's entry. */
function parseEntry(bytes: Uint8Array | null, n: number): JournalEntry | null {
  if (bytes === null) return null;
  try {
    const entry = JSON.parse(decoder.decode(bytes)) as JournalEntry;
    if (entry === null || typeof entry !== 'object' || entry.n !== n || typeof entry.o !== 'string') return null;
    if (entry.k !== undefined && !(Array.isArray(entry.k) && entry.k.every((k) => typeof k === 'string'))) return null;
    if (entry.t !== undefined && !(Array.isArray(entry.t) && entry.t.every((t) => typeof t === 'string'))) return null;
    return entry;
  } catch {
    return null;
  }
}
