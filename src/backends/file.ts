/**
 * FileBackend: one file per key in a local directory, shared by every process on the machine (several `next start`
 * processes, Next's build workers).
 *
 * On disk: the 14-byte header of the cachekit Python original, then the payload (file-format.ts). File name: sha256
 * hex of the key. Writes go to a temp file in the same directory (O_CREAT|O_EXCL|O_NOFOLLOW, 0600), are fsynced and
 * renamed over the target, so a reader (in any process) sees the old file or the new one, never a part. Nothing is
 * ever opened through a symlink. Locks are lease files (file-lease.ts); size limits are kept by file-eviction.ts.
 */
import type { Stats } from 'node:fs';
import { link, open, rename, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, assertKnownOptions, describe, envNumberOption, numberOption, stringOption } from '../shared/options.js';
import { Evictor } from './file-eviction.js';
import { HEADER_BYTES, encodeEntry, entryName, expiryOf, parseHeader, remainingOf, validTtl } from './file-format.js';
import { BACKEND, MAX_IN_FLIGHT, READ_FLAGS, Semaphore, checkCacheDir, lstatOrNull, readFully, toFileError, unlinkIfPresent, writeTemp } from './file-io.js';
import { acquireLease, releaseLease, withLease } from './file-lease.js';
import { codeOf, errorMessage, operationError } from './support.js';
import type {
  AddCapable,
  Backend,
  BackendErrorKind,
  BatchCapable,
  Closable,
  CounterCapable,
  EntryWithTtl,
  HealthDetails,
  LockCapable,
  TtlCapable,
} from '../protocol/backend.js';
import { BackendError } from '../protocol/backend.js';
import { nowMs } from '../shared/clock.js';
import { randomBytes } from '../shared/random.js';

export interface FileBackendOptions {
  /** Directory holding the entries; created with mode 0700. Must not be a symlink. @default `$TMPDIR/cachekit` */
  cacheDir?: string;
  /** Total size of the entries (headers included), in MiB. Eviction starts past 90% and stops at 70%. @default 1024 */
  maxSizeMb?: number;
  /** Largest value accepted, in MiB; must not exceed `maxSizeMb`. @default 100 (or `maxSizeMb` if smaller) */
  maxValueMb?: number;
  /** Number of entries. Eviction starts past 90% and stops at 70%. @default 10000 */
  maxEntryCount?: number;
}

const COMPONENT = 'FileBackend';
const MIB = 1024 * 1024;

/** `incr` holds the counter's lease at most this long (a crashed holder blocks the others no longer)... */
const INCR_LEASE_MS = 2_000;
/** ...and waits for it at most this long before failing with a timeout. */
const INCR_WAIT_MS = 2_000;

/** A read refreshes the entry's mtime (its LRU recency) at most this often: hot keys cost no metadata write. */
const TOUCH_INTERVAL_MS = 1_000;

interface ReadResult {
  /** Unix seconds; 0 = never expires. */
  expirySec: number;
  /** The payload when read in full. */
  payload?: Buffer;
  ino: number;
}

/**
 * A local disk L2. Cross-process safe on one machine: atomic rename for writes, `link()` for set-if-absent, lease
 * files created atomically for locks, and a lease-guarded eviction pass so only one process scans at a time.
 */
export class FileBackend implements Backend, TtlCapable, AddCapable, LockCapable, BatchCapable, CounterCapable, Closable {
  /** Absolute path of the cache directory. */
  readonly cacheDir: string;
  readonly maxSizeMb: number;
  readonly maxValueMb: number;
  readonly maxEntryCount: number;

  readonly #maxValueBytes: number;
  readonly #uid: number | undefined = typeof process.getuid === 'function' ? process.getuid() : undefined;
  readonly #slots = new Semaphore(MAX_IN_FLIGHT);
  readonly #evictor: Evictor;

  #ready: Promise<void> | undefined;
  readonly #increments = new Map<string, Promise<void>>();
  /** Set when refreshing mtimes is impossible (e.g. a read-only cache directory); reported by healthCheck. */
  #touchError: string | undefined;
  #closed = false;

  constructor(options: FileBackendOptions = {}) {
    assertKnownOptions(COMPONENT, options, ['cacheDir', 'maxSizeMb', 'maxValueMb', 'maxEntryCount']);
    const dir = stringOption(COMPONENT, 'cacheDir', options.cacheDir, path.join(os.tmpdir(), 'cachekit'));
    if (dir.trim() === '') throw new ConfigError(COMPONENT, 'cacheDir', 'must be a non-empty path');
    if (dir.includes('\0')) throw new ConfigError(COMPONENT, 'cacheDir', 'must not contain a NUL character');
    this.cacheDir = path.resolve(dir);
    this.maxSizeMb = numberOption(COMPONENT, 'maxSizeMb', options.maxSizeMb, 1024, { min: 0, minInclusive: false });
    this.maxValueMb = numberOption(COMPONENT, 'maxValueMb', options.maxValueMb, Math.min(100, this.maxSizeMb), {
      min: 0,
      minInclusive: false,
    });
    if (this.maxValueMb > this.maxSizeMb) {
      throw new ConfigError(COMPONENT, 'maxValueMb', `must be <= maxSizeMb (${this.maxSizeMb}), got ${this.maxValueMb}`);
    }
    this.maxEntryCount = numberOption(COMPONENT, 'maxEntryCount', options.maxEntryCount, 10_000, { min: 1, integer: true });
    this.#maxValueBytes = Math.floor(this.maxValueMb * MIB);
    this.#evictor = new Evictor(this.cacheDir, { maxSizeMb: this.maxSizeMb, maxEntryCount: this.maxEntryCount }, () => this.#ensureDir());
  }

  /**
   * Builds a backend from `CACHEKIT_FILE_CACHE_DIR`, `CACHEKIT_FILE_MAX_SIZE_MB`, `CACHEKIT_FILE_MAX_VALUE_MB` and
   * `CACHEKIT_FILE_MAX_ENTRY_COUNT`. Explicit `options` win over the environment, which wins over the defaults.
   */
  static fromEnv(env: NodeJS.ProcessEnv = process.env, options: FileBackendOptions = {}): FileBackend {
    const fromEnv = (name: string, rule: { integer?: boolean }) => envNumberOption(name, env, { min: 0, minInclusive: false, ...rule });
    const dir = env.CACHEKIT_FILE_CACHE_DIR?.trim();
    return new FileBackend({
      cacheDir: options.cacheDir ?? (dir ? dir : undefined),
      maxSizeMb: options.maxSizeMb ?? fromEnv('CACHEKIT_FILE_MAX_SIZE_MB', {}),
      maxValueMb: options.maxValueMb ?? fromEnv('CACHEKIT_FILE_MAX_VALUE_MB', {}),
      maxEntryCount: options.maxEntryCount ?? fromEnv('CACHEKIT_FILE_MAX_ENTRY_COUNT', { integer: true }),
    });
  }

  // ------------------------------------------------------------------------------------------------------------
  // Backend
  // ------------------------------------------------------------------------------------------------------------

  async get(key: string): Promise<Uint8Array | null> {
    const entry = await this.#run('get', key, () => this.#read(entryName(key), true, true));
    return entry?.payload ?? null;
  }

  async getWithTtl(key: string): Promise<EntryWithTtl | null> {
    const entry = await this.#run('getWithTtl', key, () => this.#read(entryName(key), true, true));
    if (!entry?.payload) return null;
    const remainingMs = remainingOf(entry.expirySec);
    // The file holds whole seconds: report whole seconds rounded down, so an L1 never outlives this entry.
    return { value: entry.payload, ttlMs: remainingMs === null ? null : Math.floor(remainingMs / 1000) * 1000 };
  }

  async set(key: string, value: Uint8Array, ttlSeconds?: number): Promise<void> {
    // Header and payload are copied into one buffer now: a caller mutating `value` later cannot change the file.
    const data = this.#encode('set', key, value, ttlSeconds);
    const name = entryName(key);
    await this.#run('set', key, () => this.#replace(name, data, true));
    await this.#evictor.maybeEvict();
  }

  async add(key: string, value: Uint8Array, ttlSeconds?: number): Promise<boolean> {
    const data = this.#encode('add', key, value, ttlSeconds);
    const name = entryName(key);
    const stored = await this.#run('add', key, async () => {
      const tmp = await writeTemp(this.cacheDir, name, data, { fsync: true });
      try {
        // link() fails with EEXIST when the target exists: set-if-absent in one atomic step, across processes.
        for (let attempt = 0; attempt < 3; attempt++) {
          try {
            await link(tmp, this.#path(name));
            this.#evictor.account(null, data.byteLength);
            return true;
          } catch (error) {
            if (codeOf(error) !== 'EEXIST') throw error;
          }
          // An expired or corrupt entry counts as absent: #read removes it (if still the same file), then retry.
          if (await this.#read(name, false, false)) return false;
        }
        return false;
      } finally {
        await unlinkIfPresent(tmp);
      }
    });
    if (stored) await this.#evictor.maybeEvict();
    return stored;
  }

  async delete(key: string): Promise<boolean> {
    const name = entryName(key);
    return this.#run('delete', key, async () => {
      // Read the header first: an expired entry still on disk does not "exist", so deleting it reports false.
      const live = await this.#read(name, false, false);
      if (!live) return false;
      const previous = await lstatOrNull(this.#path(name));
      if (!(await unlinkIfPresent(this.#path(name)))) return false;
      this.#evictor.account(previous, null);
      return true;
    });
  }

  async exists(key: string): Promise<boolean> {
    return (await this.#run('exists', key, () => this.#read(entryName(key), false, false))) !== null;
  }

  async getTtl(key: string): Promise<number | null | undefined> {
    const entry = await this.#run('getTtl', key, () => this.#read(entryName(key), false, false));
    if (!entry) return undefined;
    const remainingMs = remainingOf(entry.expirySec);
    return remainingMs === null ? null : Math.floor(remainingMs / 1000);
  }

  /**
   * Rewrites the entry with a new expiry (temp file + rename, never in place, so readers never see a half-updated
   * header). If another process replaces the entry meanwhile, its newer value wins and this returns `true`.
   */
  async refreshTtl(key: string, ttlSeconds: number): Promise<boolean> {
    if (!(ttlSeconds > 0) || !validTtl(ttlSeconds)) {
      throw this.#error('permanent', 'refreshTtl', key, `ttlSeconds must be > 0, got ${describe(ttlSeconds)}`);
    }
    const name = entryName(key);
    return this.#run('refreshTtl', key, async () => {
      const entry = await this.#read(name, true, false);
      if (!entry?.payload) return false;
      const data = encodeEntry(entry.payload, expiryOf(ttlSeconds));
      const tmp = await writeTemp(this.cacheDir, name, data, { fsync: true });
      try {
        // Only replace the very file we read: a concurrent set() must not be undone by an old payload.
        const current = await lstatOrNull(this.#path(name));
        if (current?.ino !== entry.ino) return current !== null;
        await rename(tmp, this.#path(name));
        return true;
      } finally {
        await unlinkIfPresent(tmp);
      }
    });
  }

  /**
   * Under the key's lease (the same lease files as acquireLock, so every process queues on it): read the counter, add
   * 1, write a temp file and rename it over, so a reader sees the old value or the new one. A counter is an entry like
   * any other (its payload the digits), so `get` reads it; it keeps the expiry it had (none when created here).
   */
  async incr(key: string, initial: number): Promise<number> {
    if (!Number.isSafeInteger(initial) || initial < 0)
      throw this.#error('permanent', 'incr', key, `initial must be a safe integer >= 0, got ${describe(initial)}`);
    const name = entryName(key);
    // One increment at a time per counter in this process: the lease then only arbitrates between processes.
    const previous = this.#increments.get(name) ?? Promise.resolve();
    const next = previous.then(() => this.#incr(key, name, initial));
    const settled = next.then(
      () => {},
      () => {},
    );
    this.#increments.set(name, settled);
    void settled.then(() => {
      if (this.#increments.get(name) === settled) this.#increments.delete(name);
    });
    return next;
  }

  #incr(key: string, name: string, initial: number): Promise<number> {
    return this.#run('incr', key, async () => {
      const held = await withLease(this.cacheDir, `${name}.lock`, INCR_LEASE_MS, INCR_WAIT_MS, async () => {
        const current = await this.#read(name, true, false);
        const digits = current?.payload?.toString('latin1');
        const value = digits === undefined ? initial : Number(digits) + 1;
        if (digits !== undefined && (!/^\d+$/.test(digits) || !Number.isSafeInteger(value))) {
          throw this.#error('permanent', 'incr', key, 'the key holds something other than a counter');
        }
        const data = encodeEntry(Buffer.from(String(value), 'latin1'), current?.expirySec ?? 0);
        // No fsync: a counter lost in a crash comes back lower or missing, which its readers treat as a reset.
        await this.#replace(name, data, false);
        return value;
      });
      if (!held) throw this.#error('timeout', 'incr', key, `the counter stayed locked for ${INCR_WAIT_MS} ms`);
      return held.value;
    });
  }

  async getMany(keys: readonly string[]): Promise<(Uint8Array | null)[]> {
    return Promise.all(keys.map((key) => this.get(key)));
  }

  async setMany(entries: readonly { key: string; value: Uint8Array; ttlSeconds?: number }[]): Promise<void> {
    await Promise.all(entries.map(({ key, value, ttlSeconds }) => this.set(key, value, ttlSeconds)));
  }

  /**
   * A lease lock shared by every process using this directory: `<hash>.lock` holding the token and expiry, put in
   * place with link() (atomic, fails if held). An expired lease is taken over; see `takeOver` in file-lease.ts.
   */
  async acquireLock(key: string, timeoutMs: number): Promise<string | null> {
    if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
      throw this.#error('permanent', 'acquireLock', key, `timeoutMs must be a positive number, got ${timeoutMs}`);
    }
    return this.#run('acquireLock', key, () => acquireLease(this.cacheDir, `${entryName(key)}.lock`, timeoutMs));
  }

  async releaseLock(key: string, token: string): Promise<boolean> {
    return this.#run('releaseLock', key, () => releaseLease(this.cacheDir, `${entryName(key)}.lock`, token));
  }

  /**
   * Writes, reads back and removes a probe file. Never throws: a failure is `[false, { ..., error }]`. Also unhealthy
   * when the last eviction pass failed (the directory would grow without bound).
   */
  async healthCheck(): Promise<[boolean, HealthDetails]> {
    const started = performance.now();
    const details: HealthDetails = { latency_ms: 0, backend_type: BACKEND, cache_dir: this.cacheDir };
    try {
      const expected = randomBytes(32);
      const probe = `.probe.${process.pid}.${randomBytes(6).toString('hex')}`;
      const ok = await this.#run('healthCheck', undefined, async () => {
        const tmp = await writeTemp(this.cacheDir, probe, expected, { fsync: false });
        try {
          await rename(tmp, this.#path(probe));
          const handle = await open(this.#path(probe), READ_FLAGS);
          try {
            const got = Buffer.alloc(expected.byteLength);
            return (await readFully(handle, got, 0)) === got.byteLength && got.equals(expected);
          } finally {
            await handle.close();
          }
        } finally {
          await unlinkIfPresent(tmp);
          await unlinkIfPresent(this.#path(probe));
        }
      });
      details.latency_ms = performance.now() - started;
      if (this.#evictor.counters === undefined) await this.#evictor.maybeEvict();
      details.entries = this.#evictor.counters?.entries ?? null;
      details.size_bytes = this.#evictor.counters?.bytes ?? null;
      details.max_size_mb = this.maxSizeMb;
      details.max_entry_count = this.maxEntryCount;
      if (this.#touchError) details.lru_touch_error = this.#touchError;
      if (!ok) return [false, { ...details, error: 'probe file read back different bytes' }];
      const evictionError = this.#evictor.lastError;
      if (evictionError) return [false, { ...details, error: evictionError.message }];
      return [true, details];
    } catch (error) {
      details.latency_ms = performance.now() - started;
      return [false, { ...details, error: errorMessage(error) }];
    }
  }

  /** Waits for an eviction pass in flight; later operations reject. Files stay on disk for the next process. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#evictor.close();
  }

  // ------------------------------------------------------------------------------------------------------------
  // Reading and writing files
  // ------------------------------------------------------------------------------------------------------------

  #path(name: string): string {
    return path.join(this.cacheDir, name);
  }

  #encode(operation: string, key: string, value: Uint8Array, ttlSeconds: number | undefined): Buffer {
    if (value.byteLength > this.#maxValueBytes) {
      throw this.#error('permanent', operation, key, `value of ${value.byteLength} bytes exceeds maxValueMb (${this.maxValueMb} MiB)`);
    }
    if (ttlSeconds !== undefined && !validTtl(ttlSeconds)) {
      throw this.#error('permanent', operation, key, `ttlSeconds must be a number >= 0, got ${describe(ttlSeconds)}`);
    }
    return encodeEntry(value, expiryOf(ttlSeconds));
  }

  /**
   * Opens an entry without following symlinks and validates its header. Missing, foreign, truncated and expired files
   * are misses; the last three are removed. `touch` refreshes the mtime that eviction uses as the last read time.
   */
  /** Writes `data` to a temp file and renames it over entry `name`: readers see the old file or the new one, whole. */
  async #replace(name: string, data: Uint8Array, fsync: boolean): Promise<void> {
    const tmp = await writeTemp(this.cacheDir, name, data, { fsync });
    try {
      const previous = await lstatOrNull(this.#path(name));
      await rename(tmp, this.#path(name));
      this.#evictor.account(previous, data.byteLength);
    } catch (error) {
      await unlinkIfPresent(tmp);
      throw error;
    }
  }

  async #read(name: string, full: boolean, touch: boolean): Promise<ReadResult | null> {
    const file = this.#path(name);
    let handle: FileHandle;
    try {
      handle = await open(file, READ_FLAGS);
    } catch (error) {
      if (codeOf(error) === 'ENOENT') return null;
      // ELOOP: a symlink planted at the entry's path. Never followed; the link itself is removed.
      if (codeOf(error) === 'ELOOP') {
        await this.#discard(file, (current) => current.isSymbolicLink());
        return null;
      }
      throw error;
    }
    let stats: Stats | undefined;
    let result: ReadResult | null = null;
    try {
      stats = await handle.stat();
      // Larger than this instance accepts: perhaps another process's legitimate entry (configured with a larger
      // maxValueMb). A miss, but not removed; it is never loaded into memory either.
      if (full && stats.isFile() && stats.size > HEADER_BYTES + this.#maxValueBytes) return null;
      const plausible = stats.isFile() && stats.size >= HEADER_BYTES && (this.#uid === undefined || stats.uid === this.#uid);
      if (plausible) {
        const buffer = Buffer.allocUnsafe(full ? stats.size : HEADER_BYTES);
        const expirySec = (await readFully(handle, buffer, 0)) === buffer.byteLength ? parseHeader(buffer) : null;
        if (expirySec !== null && (expirySec === 0 || nowMs() < expirySec * 1000)) {
          result = { expirySec, ino: stats.ino, ...(full ? { payload: buffer.subarray(HEADER_BYTES) } : {}) };
          if (touch) await this.#touch(handle, stats);
        }
      }
    } finally {
      await handle.close();
    }
    if (result === null) {
      const seen = stats;
      await this.#discard(file, (current) => current.ino === seen?.ino);
    }
    return result;
  }

  async #touch(handle: FileHandle, stats: Stats): Promise<void> {
    const now = nowMs();
    if (this.#touchError !== undefined || now - stats.mtimeMs < TOUCH_INTERVAL_MS) return;
    try {
      await handle.utimes(now / 1000, now / 1000);
    } catch (error) {
      // A read-only cache (e.g. baked into an image) still serves reads; LRU recency is lost and healthCheck says so.
      if (!['EROFS', 'EPERM', 'EACCES'].includes(codeOf(error) ?? '')) throw error;
      this.#touchError = `cannot refresh mtimes for LRU (${codeOf(error)}); eviction falls back to write order`;
    }
  }

  /** Removes a bad file if `same` confirms it is still the one seen, not a fresh entry another process renamed there. */
  async #discard(file: string, same: (current: Stats) => boolean): Promise<void> {
    const current = await lstatOrNull(file);
    if (current === null || !same(current)) return;
    if (current.isDirectory()) {
      throw new BackendError(`a directory is in the way of an entry file: ${file}`, { kind: 'permanent', backend: BACKEND });
    }
    if (await unlinkIfPresent(file)) this.#evictor.account(current, null);
  }

  // ------------------------------------------------------------------------------------------------------------
  // Directory, concurrency and errors
  // ------------------------------------------------------------------------------------------------------------

  /**
   * Creates the directory (0700) or checks the existing one. Refused with a permanent BackendError, on first use
   * rather than in the constructor: the directory is state that can change, and a bad one must not crash the app.
   */
  #ensureDir(): Promise<void> {
    this.#ready ??= checkCacheDir(this.cacheDir, this.#uid).catch((error: unknown) => {
      this.#ready = undefined; // retried by the next operation: the directory may be fixed meanwhile
      throw error;
    });
    return this.#ready;
  }

  /** Runs one operation: open check, a concurrency slot, the directory, and errors mapped onto BackendError. */
  async #run<T>(operation: string, key: string | undefined, fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw this.#error('permanent', operation, key, 'backend is closed');
    await this.#slots.acquire();
    try {
      await this.#ensureDir();
      try {
        return await fn();
      } catch (error) {
        // The directory itself vanished (e.g. a tmp cleaner): recreate it once and retry.
        if (codeOf(error) !== 'ENOENT' || (await lstatOrNull(this.cacheDir)) !== null) throw error;
        this.#ready = undefined;
        await this.#ensureDir();
        return await fn();
      }
    } catch (error) {
      throw toFileError(operation, key, error);
    } finally {
      this.#slots.release();
    }
  }

  #error(kind: BackendErrorKind, operation: string, key: string | undefined, message: string): BackendError {
    return operationError(BACKEND, kind, operation, key, message);
  }
}
