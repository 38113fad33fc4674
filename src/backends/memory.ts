import { assertKnownOptions, numberOption } from '../shared/options.js';
import type { AddCapable, Backend, BatchCapable, CounterCapable, EntryWithTtl, HealthDetails, LockCapable, TtlCapable } from '../protocol/backend.js';
import { BackendError } from '../protocol/backend.js';
import { nowMs } from '../shared/clock.js';
import { randomUUID } from '../shared/random.js';

export interface MemoryBackendOptions {
  /** Largest value accepted, in bytes. @default Infinity */
  maxValueBytes?: number;
}

interface Slot {
  value: Uint8Array;
  /** Epoch ms; `Infinity` when the entry never expires. */
  expiresAt: number;
}

/**
 * A process-local L2 for tests and single-process apps: a Map with per-entry expiry. Values are copied in and out,
 * so callers never share a buffer with the store.
 */
export class MemoryBackend implements Backend, BatchCapable, TtlCapable, LockCapable, AddCapable, CounterCapable {
  readonly #entries = new Map<string, Slot>();
  readonly #locks = new Map<string, { token: string; expiresAt: number }>();
  readonly #maxValueBytes: number;

  constructor(options: MemoryBackendOptions = {}) {
    assertKnownOptions('MemoryBackend', options, ['maxValueBytes']);
    this.#maxValueBytes = numberOption('MemoryBackend', 'maxValueBytes', options.maxValueBytes, Infinity, { min: 0 });
  }

  /** Number of live entries (expired ones are dropped first). */
  get size(): number {
    for (const key of this.#entries.keys()) this.#live(key);
    return this.#entries.size;
  }

  #live(key: string): Slot | undefined {
    const slot = this.#entries.get(key);
    if (slot && slot.expiresAt <= nowMs()) {
      this.#entries.delete(key);
      return undefined;
    }
    return slot;
  }

  async get(key: string): Promise<Uint8Array | null> {
    const slot = this.#live(key);
    return slot ? slot.value.slice() : null;
  }

  async getWithTtl(key: string): Promise<EntryWithTtl | null> {
    const slot = this.#live(key);
    if (!slot) return null;
    return { value: slot.value.slice(), ttlMs: slot.expiresAt === Infinity ? null : slot.expiresAt - nowMs() };
  }

  async set(key: string, value: Uint8Array, ttlSeconds?: number): Promise<void> {
    if (value.byteLength > this.#maxValueBytes) {
      throw new BackendError(`value of ${value.byteLength} bytes exceeds maxValueBytes ${this.#maxValueBytes}`, {
        kind: 'permanent',
        backend: 'memory',
        operation: 'set',
        key,
      });
    }
    this.#entries.set(key, { value: Uint8Array.prototype.slice.call(value), expiresAt: expiryOf(ttlSeconds) });
  }

  async add(key: string, value: Uint8Array, ttlSeconds?: number): Promise<boolean> {
    if (this.#live(key)) return false;
    await this.set(key, value, ttlSeconds);
    return true;
  }

  async delete(key: string): Promise<boolean> {
    const existed = this.#live(key) !== undefined;
    this.#entries.delete(key);
    return existed;
  }

  async exists(key: string): Promise<boolean> {
    return this.#live(key) !== undefined;
  }

  async incr(key: string, initial: number): Promise<number> {
    const current = this.#live(key);
    const value = current ? Number(new TextDecoder().decode(current.value)) + 1 : initial;
    if (!Number.isSafeInteger(value))
      throw new BackendError(`incr: ${key} does not hold a counter`, { kind: 'permanent', backend: 'memory', operation: 'incr', key });
    this.#entries.set(key, { value: new TextEncoder().encode(String(value)), expiresAt: current?.expiresAt ?? Infinity });
    return value;
  }

  async getMany(keys: readonly string[]): Promise<(Uint8Array | null)[]> {
    return Promise.all(keys.map((key) => this.get(key)));
  }

  async setMany(entries: readonly { key: string; value: Uint8Array; ttlSeconds?: number }[]): Promise<void> {
    for (const { key, value, ttlSeconds } of entries) await this.set(key, value, ttlSeconds);
  }

  async getTtl(key: string): Promise<number | null | undefined> {
    const slot = this.#live(key);
    if (!slot) return undefined;
    return slot.expiresAt === Infinity ? null : Math.ceil((slot.expiresAt - nowMs()) / 1000);
  }

  async refreshTtl(key: string, ttlSeconds: number): Promise<boolean> {
    const slot = this.#live(key);
    if (!slot) return false;
    slot.expiresAt = expiryOf(ttlSeconds);
    return true;
  }

  async acquireLock(key: string, timeoutMs: number): Promise<string | null> {
    const held = this.#locks.get(key);
    if (held && held.expiresAt > nowMs()) return null;
    const token = randomUUID();
    this.#locks.set(key, { token, expiresAt: nowMs() + timeoutMs });
    return token;
  }

  async releaseLock(key: string, token: string): Promise<boolean> {
    const held = this.#locks.get(key);
    if (!held || held.token !== token || held.expiresAt <= nowMs()) return false;
    this.#locks.delete(key);
    return true;
  }

  async healthCheck(): Promise<[boolean, HealthDetails]> {
    return [true, { latency_ms: 0, backend_type: 'memory', entries: this.size }];
  }

  /** Drops every entry and lock. */
  clear(): void {
    this.#entries.clear();
    this.#locks.clear();
  }
}

function expiryOf(ttlSeconds: number | undefined): number {
  return ttlSeconds && ttlSeconds > 0 ? nowMs() + ttlSeconds * 1000 : Infinity;
}
