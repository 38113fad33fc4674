/**
 * FileBackend: one file per key in a local directory, shared by every process on the machine (several `next start`
 * processes, Next's build workers).
 *
 * On disk: the 14-byte header of the cachekit Python original, then the payload (file-format.ts). File name: sha256
 * hex of the key. Writes go to a temp file in the same directory (O_CREAT|O_EXCL|O_NOFOLLOW, 0600), are fsynced and
 * renamed over the target, so a reader (in any process) sees the old file or the new one, never a part. Nothing is
 * ever opened through a symlink. Entry files are read and replaced by file-entries.ts, options live in file-options.ts,
 * locks are lease files (file-lease.ts); size limits are kept by file-eviction.ts.
 */
import { link, open, rename } from 'node:fs/promises';
import { describe } from '../shared/options.js';
import { EntryFiles } from './file-entries.js';
import { Evictor } from './file-eviction.js';
import { encodeEntry, entryName, expiryOf, remainingOf, validTtl } from './file-format.js';
import { BACKEND, MAX_IN_FLIGHT, READ_FLAGS, Semaphore, checkCacheDir, lstatOrNull, readFully, toFileError, unlinkIfPresent, writeTemp } from './file-io.js';
import { type FileBackendOptions, fileOptionsFromEnv, resolveFileOptions } from './file-options.js';
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
import type { BackendError } from '../protocol/backend.js';
import { randomBytes } from '../shared/random.js';
import { fileLockName } from '../wire/keys.js';
import { processEnv } from '../shared/env.js';

export type { FileBackendOptions } from './file-options.js';

const MIB = 1024 * 1024;

/** `incr` holds the counter's lease at most this long (a crashed holder blocks the others no longer)... */
const INCR_LEASE_MS = 2_000;
/** ...and waits for it at most this long before failing with a timeout. */
const INCR_WAIT_MS = 2_000;

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

  readonly #files: EntryFiles;
  readonly #slots = new Semaphore(MAX_IN_FLIGHT);
  readonly #evictor: Evictor;

  #ready: Promise<void> | undefined;
  readonly #increments = new Map<string, Promise<void>>();
  #closed = false;

  constructor(options: FileBackendOptions = {}) {
    const resolved = resolveFileOptions(options);
    this.cacheDir = resolved.cacheDir;
    this.maxSizeMb = resolved.maxSizeMb;
    this.maxValueMb = resolved.maxValueMb;
    this.maxEntryCount = resolved.maxEntryCount;
    this.#evictor = new Evictor(this.cacheDir, { maxSizeMb: this.maxSizeMb, maxEntryCount: this.maxEntryCount }, () => this.#ensureDir());
    this.#files = new EntryFiles(this.cacheDir, Math.floor(this.maxValueMb * MIB), this.#evictor);
  }

  /**
   * Builds a backend from `CACHEKIT_FILE_CACHE_DIR`, `CACHEKIT_FILE_MAX_SIZE_MB`, `CACHEKIT_FILE_MAX_VALUE_MB` and
   * `CACHEKIT_FILE_MAX_ENTRY_COUNT`. Explicit `options` win over the environment, which wins over the defaults.
   */
  static fromEnv(env: NodeJS.ProcessEnv = processEnv(), options: FileBackendOptions = {}): FileBackend {
    return new FileBackend(fileOptionsFromEnv(env, options));
  }

  // ------------------------------------------------------------------------------------------------------------
  // Backend
  // ------------------------------------------------------------------------------------------------------------

  async get(key: string): Promise<Uint8Array | null> {
    const entry = await this.#run('get', key, () => this.#files.read(entryName(key), true, true));
    return entry?.payload ?? null;
  }

  async getWithTtl(key: string): Promise<EntryWithTtl | null> {
    const entry = await this.#run('getWithTtl', key, () => this.#files.read(entryName(key), true, true));
    if (!entry?.payload) return null;
    const remainingMs = remainingOf(entry.expirySec);
    // The file holds whole seconds: report whole seconds rounded down, so an L1 never outlives this entry.
    return { value: entry.payload, ttlMs: remainingMs === null ? null : Math.floor(remainingMs / 1000) * 1000 };
  }

  async set(key: string, value: Uint8Array, ttlSeconds?: number): Promise<void> {
    // Header and payload are copied into one buffer now: a caller mutating `value` later cannot change the file.
    const data = this.#encode('set', key, value, ttlSeconds);
    const name = entryName(key);
    await this.#run('set', key, () => this.#files.replace(name, data, true));
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
            await link(tmp, this.#files.path(name));
            this.#evictor.account(null, data.byteLength);
            return true;
          } catch (error) {
            if (codeOf(error) !== 'EEXIST') throw error;
          }
          // An expired or corrupt entry counts as absent: #read removes it (if still the same file), then retry.
          if (await this.#files.read(name, false, false)) return false;
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
      const live = await this.#files.read(name, false, false);
      if (!live) return false;
      const previous = await lstatOrNull(this.#files.path(name));
      if (!(await unlinkIfPresent(this.#files.path(name)))) return false;
      this.#evictor.account(previous, null);
      return true;
    });
  }

  async exists(key: string): Promise<boolean> {
    return (await this.#run('exists', key, () => this.#files.read(entryName(key), false, false))) !== null;
  }

  async getTtl(key: string): Promise<number | null | undefined> {
    const entry = await this.#run('getTtl', key, () => this.#files.read(entryName(key), false, false));
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
      const entry = await this.#files.read(name, true, false);
      if (!entry?.payload) return false;
      const data = encodeEntry(entry.payload, expiryOf(ttlSeconds));
      const tmp = await writeTemp(this.cacheDir, name, data, { fsync: true });
      try {
        // Only replace the very file we read: a concurrent set() must not be undone by an old payload.
        const current = await lstatOrNull(this.#files.path(name));
        if (current?.ino !== entry.ino) return current !== null;
        await rename(tmp, this.#files.path(name));
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
      const held = await withLease(this.cacheDir, fileLockName(name), INCR_LEASE_MS, INCR_WAIT_MS, async () => {
        const current = await this.#files.read(name, true, false);
        const digits = current?.payload?.toString('latin1');
        const value = digits === undefined ? initial : Number(digits) + 1;
        if (digits !== undefined && (!/^\d+$/.test(digits) || !Number.isSafeInteger(value))) {
          throw this.#error('permanent', 'incr', key, 'the key holds something other than a counter');
        }
        const data = encodeEntry(Buffer.from(String(value), 'latin1'), current?.expirySec ?? 0);
        // No fsync: a counter lost in a crash comes back lower or missing, which its readers treat as a reset.
        await this.#files.replace(name, data, false);
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
    return this.#run('acquireLock', key, () => acquireLease(this.cacheDir, fileLockName(entryName(key)), timeoutMs));
  }

  async releaseLock(key: string, token: string): Promise<boolean> {
    return this.#run('releaseLock', key, () => releaseLease(this.cacheDir, fileLockName(entryName(key)), token));
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
          await rename(tmp, this.#files.path(probe));
          const handle = await open(this.#files.path(probe), READ_FLAGS);
          try {
            const got = Buffer.alloc(expected.byteLength);
            return (await readFully(handle, got, 0)) === got.byteLength && got.equals(expected);
          } finally {
            await handle.close();
          }
        } finally {
          await unlinkIfPresent(tmp);
          await unlinkIfPresent(this.#files.path(probe));
        }
      });
      details.latency_ms = performance.now() - started;
      if (this.#evictor.counters === undefined) await this.#evictor.maybeEvict();
      details.entries = this.#evictor.counters?.entries ?? null;
      details.size_bytes = this.#evictor.counters?.bytes ?? null;
      details.max_size_mb = this.maxSizeMb;
      details.max_entry_count = this.maxEntryCount;
      if (this.#files.touchError) details.lru_touch_error = this.#files.touchError;
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
  // Entries (read and replaced by file-entries.ts), directory, concurrency and errors
  // ------------------------------------------------------------------------------------------------------------

  #encode(operation: string, key: string, value: Uint8Array, ttlSeconds: number | undefined): Buffer {
    if (value.byteLength > this.#files.maxValueBytes) {
      throw this.#error('permanent', operation, key, `value of ${value.byteLength} bytes exceeds maxValueMb (${this.maxValueMb} MiB)`);
    }
    if (ttlSeconds !== undefined && !validTtl(ttlSeconds)) {
      throw this.#error('permanent', operation, key, `ttlSeconds must be a number >= 0, got ${describe(ttlSeconds)}`);
    }
    return encodeEntry(value, expiryOf(ttlSeconds));
  }

  /**
   * Creates the directory (0700) or checks the existing one. Refused with a permanent BackendError, on first use
   * rather than in the constructor: the directory is state that can change, and a bad one must not crash the app.
   */
  #ensureDir(): Promise<void> {
    this.#ready ??= checkCacheDir(this.cacheDir, this.#files.uid).catch((error: unknown) => {
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
