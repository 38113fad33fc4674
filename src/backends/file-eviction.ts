/**
 * FileBackend's size accounting and LRU eviction. Each process keeps approximate counters of the directory (entries,
 * bytes) from its own writes, and resyncs them with a directory scan run under a cross-process lease, so that only
 * one process scans at a time. Past 90% of a limit the scan removes the least recently read entries down to 70%.
 */
import type { Stats } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { ENTRY_NAME, KEY_LOCK_NAME } from './file-format.js';
import { MAX_IN_FLIGHT, lstatOrNull, toFileError, unlinkIfPresent } from './file-io.js';
import { acquireLease, readLease, releaseLease, takeOver } from './file-lease.js';
import type { BackendError } from '../protocol/backend.js';
import { nowMs } from '../shared/clock.js';

const MIB = 1024 * 1024;
const EVICT_TRIGGER = 0.9;
const EVICT_TARGET = 0.7;
/**
 * Counters only see this process's writes. A process rescans (under the eviction lease) after writing this share of
 * either limit, or after RESYNC_INTERVAL_MS, so other processes' writes are counted: with N writing processes the
 * directory can pass 90% by at most about N x 10% before some process's pass trims it.
 */
const RESYNC_WRITTEN_SHARE = 0.1;
const RESYNC_INTERVAL_MS = 60_000;
/** Lease on the directory-wide eviction lock; a crashed evictor's lock is taken over after it. */
const EVICTION_LEASE_MS = 30_000;
/** Temp files older than this belong to a crashed writer and are removed by the scan. */
const ORPHAN_AGE_MS = 15 * 60_000;
const EVICTION_LOCK = '.evict.lock';

export interface Counters {
  entries: number;
  bytes: number;
}

interface ScannedEntry {
  name: string;
  size: number;
  mtimeMs: number;
  ino: number;
}

/** The counters and eviction passes of one FileBackend instance over its cache directory. */
export class Evictor {
  readonly #dir: string;
  readonly #maxSizeMb: number;
  readonly #maxEntryCount: number;
  readonly #triggerBytes: number;
  readonly #targetBytes: number;
  readonly #triggerEntries: number;
  readonly #targetEntries: number;
  /** Makes sure the directory exists and is safe before a scan. */
  readonly #ensureDir: () => Promise<void>;

  #counters: Counters | undefined;
  #lastScanAt = 0;
  /** Written by this process since the last scan; drives the resync. */
  #writtenSinceScan: Counters = { entries: 0, bytes: 0 };
  #evicting: Promise<void> | undefined;
  #lastError: BackendError | undefined;
  #closed = false;

  constructor(dir: string, limits: { maxSizeMb: number; maxEntryCount: number }, ensureDir: () => Promise<void>) {
    this.#dir = dir;
    this.#maxSizeMb = limits.maxSizeMb;
    this.#maxEntryCount = limits.maxEntryCount;
    this.#triggerBytes = limits.maxSizeMb * MIB * EVICT_TRIGGER;
    this.#targetBytes = limits.maxSizeMb * MIB * EVICT_TARGET;
    this.#triggerEntries = limits.maxEntryCount * EVICT_TRIGGER;
    this.#targetEntries = Math.floor(limits.maxEntryCount * EVICT_TARGET);
    this.#ensureDir = ensureDir;
  }

  /** The directory's size as of the last scan plus this process's writes since; `undefined` before the first scan. */
  get counters(): Counters | undefined {
    return this.#counters;
  }

  /** Why the last pass failed, until one succeeds. */
  get lastError(): BackendError | undefined {
    return this.#lastError;
  }

  /** Keeps the approximate counters current for one entry replaced (`previous`) by one of `size` bytes (or none). */
  account(previous: Stats | null, size: number | null): void {
    if (size !== null) {
      this.#writtenSinceScan.entries += 1;
      this.#writtenSinceScan.bytes += size;
    }
    const counters = this.#counters;
    if (!counters) return;
    if (previous?.isFile()) {
      counters.entries -= 1;
      counters.bytes -= previous.size;
    }
    if (size !== null) {
      counters.entries += 1;
      counters.bytes += size;
    }
    counters.entries = Math.max(0, counters.entries);
    counters.bytes = Math.max(0, counters.bytes);
  }

  /** Starts an eviction pass when the counters say so (or need a resync). One pass per process at a time. */
  async maybeEvict(): Promise<void> {
    if (this.#evicting || this.#closed) return;
    const counters = this.#counters;
    const written = this.#writtenSinceScan;
    const due =
      counters === undefined ||
      counters.bytes > this.#triggerBytes ||
      counters.entries > this.#triggerEntries ||
      written.bytes > this.#maxSizeMb * MIB * RESYNC_WRITTEN_SHARE ||
      written.entries > this.#maxEntryCount * RESYNC_WRITTEN_SHARE ||
      nowMs() - this.#lastScanAt > RESYNC_INTERVAL_MS;
    if (!due) return;
    this.#evicting = this.#pass().finally(() => {
      this.#evicting = undefined;
    });
    await this.#evicting;
  }

  /** Waits for a pass in flight; no pass starts afterwards. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#evicting;
  }

  #path(name: string): string {
    return path.join(this.#dir, name);
  }

  /**
   * Scans the directory under the cross-process eviction lease, resyncs the counters and, past 90% of a limit, removes
   * the least recently read entries (oldest mtime) down to 70%. Failures are kept for healthCheck: the value that
   * triggered the pass is already stored, so set() does not fail for them.
   */
  async #pass(): Promise<void> {
    let token: string | null = null;
    try {
      await this.#ensureDir();
      token = await acquireLease(this.#dir, EVICTION_LOCK, EVICTION_LEASE_MS);
      if (token === null) return; // another process is scanning; our counters catch up on a later pass
      const writtenBefore = { ...this.#writtenSinceScan };
      const entries = await this.#scan();
      let bytes = entries.reduce((sum, e) => sum + e.size, 0);
      let count = entries.length;
      if (bytes > this.#triggerBytes || count > this.#triggerEntries) {
        entries.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.name < b.name ? -1 : 1));
        for (const entry of entries) {
          if (bytes <= this.#targetBytes && count <= this.#targetEntries) break;
          const file = this.#path(entry.name);
          // Skip an entry read or rewritten since the scan: it is no longer among the least recently used.
          const current = await lstatOrNull(file);
          if (current !== null && (current.ino !== entry.ino || current.mtimeMs !== entry.mtimeMs)) continue;
          if (current !== null) await unlinkIfPresent(file);
          bytes -= entry.size;
          count -= 1;
        }
      }
      this.#counters = { entries: count, bytes };
      this.#lastScanAt = nowMs();
      // Writes that completed during the scan may or may not be in it; count them towards the next resync.
      this.#writtenSinceScan = {
        entries: this.#writtenSinceScan.entries - writtenBefore.entries,
        bytes: this.#writtenSinceScan.bytes - writtenBefore.bytes,
      };
      this.#lastError = undefined;
    } catch (error) {
      this.#lastError = toFileError('evict', undefined, error);
    } finally {
      if (token !== null) {
        await releaseLease(this.#dir, EVICTION_LOCK, token).catch((error: unknown) => {
          this.#lastError = toFileError('evict', undefined, error);
        });
      }
    }
  }

  /** Entry files with size and mtime; removes orphaned temp files and long-expired key leases on the way. */
  async #scan(): Promise<ScannedEntry[]> {
    const names = await readdir(this.#dir);
    const found: ScannedEntry[] = [];
    const now = nowMs();
    for (let i = 0; i < names.length; i += MAX_IN_FLIGHT) {
      await Promise.all(
        names.slice(i, i + MAX_IN_FLIGHT).map(async (name) => {
          const stats = await lstatOrNull(this.#path(name));
          if (stats === null || !stats.isFile()) return;
          if (ENTRY_NAME.test(name)) {
            found.push({ name, size: stats.size, mtimeMs: stats.mtimeMs, ino: stats.ino });
          } else if ((name.endsWith('.tmp') || name.endsWith('.aside')) && now - stats.mtimeMs > ORPHAN_AGE_MS) {
            await unlinkIfPresent(this.#path(name));
          } else if (KEY_LOCK_NAME.test(name) && now - stats.mtimeMs > ORPHAN_AGE_MS) {
            const lease = await readLease(this.#dir, name);
            if (lease !== null && lease.expiresAtMs < now) await takeOver(this.#dir, name, lease);
          }
        }),
      );
    }
    return found;
  }
}
