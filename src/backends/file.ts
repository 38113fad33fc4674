/**
 * FileBackend: one file per key in a local directory, shared by every process on the machine (several `next start`
 * processes, Next's build workers).
 *
 * On disk (the 14-byte header of the cachekit Python original, then the payload):
 *   `C` `K` | version u8 (1) | reserved u8 (0) | flags u16 BE (0) | expiry u64 BE (unix seconds, 0 = never) | payload
 * File name: sha256 hex of the key. Writes go to a temp file in the same directory (O_CREAT|O_EXCL|O_NOFOLLOW, 0600),
 * are fsynced and renamed over the target, so a reader (in any process) sees the old file or the new one, never a part.
 * Nothing is ever opened through a symlink.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { constants as fsConstants, type Stats } from 'node:fs';
import { link, lstat, mkdir, open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, assertKnownOptions, describe, envNumber, numberOption, stringOption } from '../core/options.js';
import type {
  AddCapable,
  Backend,
  BackendErrorKind,
  BatchCapable,
  Closable,
  EntryWithTtl,
  HealthDetails,
  LockCapable,
  TtlCapable,
} from './types.js';
import { BackendError } from './types.js';

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

const BACKEND = 'file';
const COMPONENT = 'FileBackend';
const MIB = 1024 * 1024;

const MAGIC_0 = 0x43; // 'C'
const MAGIC_1 = 0x4b; // 'K'
const FORMAT_VERSION = 1;
const HEADER_BYTES = 14;

const EVICT_TRIGGER = 0.9;
const EVICT_TARGET = 0.7;
/** A read refreshes the entry's mtime (its LRU recency) at most this often: hot keys cost no metadata write. */
const TOUCH_INTERVAL_MS = 1_000;
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
/** Per-instance bound on file operations in flight (file descriptors, memory). */
const MAX_IN_FLIGHT = 32;

const ENTRY_NAME = /^[0-9a-f]{64}$/;
const KEY_LOCK_NAME = /^[0-9a-f]{64}\.lock$/;
const EVICTION_LOCK = '.evict.lock';
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const O_NOFOLLOW = fsConstants.O_NOFOLLOW ?? 0;
// O_NONBLOCK: a FIFO planted at an entry's path must not block open(); it has no effect on regular files.
const READ_FLAGS = fsConstants.O_RDONLY | O_NOFOLLOW | (fsConstants.O_NONBLOCK ?? 0);
const CREATE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | O_NOFOLLOW;

const TRANSIENT_CODES = new Set(['ENOSPC', 'EDQUOT', 'EMFILE', 'ENFILE', 'EAGAIN', 'EWOULDBLOCK', 'EBUSY', 'EINTR', 'ESTALE', 'ENOENT', 'ENOMEM']);
const PERMANENT_CODES = new Set([
  'EACCES', 'EPERM', 'ELOOP', 'EROFS', 'ENOTDIR', 'EISDIR', 'ENAMETOOLONG', 'EXDEV', 'EINVAL', 'ENOTSUP', 'EOPNOTSUPP',
  'EEXIST', 'ENOTEMPTY', 'EMLINK', 'EFBIG',
]);

interface Counters {
  entries: number;
  bytes: number;
}

interface ReadResult {
  /** Unix seconds; 0 = never expires. */
  expirySec: number;
  /** The payload when read in full. */
  payload?: Buffer;
  ino: number;
}

interface Lease {
  /** The file's exact contents, to recognise it again after moving it aside. */
  raw: string;
  token: string | undefined;
  expiresAtMs: number;
}

/**
 * A local disk L2. Cross-process safe on one machine: atomic rename for writes, `link()` for set-if-absent, lease
 * files created atomically for locks, and a lease-guarded eviction pass so only one process scans at a time.
 */
export class FileBackend implements Backend, TtlCapable, AddCapable, LockCapable, BatchCapable, Closable {
  /** Absolute path of the cache directory. */
  readonly cacheDir: string;
  readonly maxSizeMb: number;
  readonly maxValueMb: number;
  readonly maxEntryCount: number;

  readonly #maxValueBytes: number;
  readonly #triggerBytes: number;
  readonly #targetBytes: number;
  readonly #triggerEntries: number;
  readonly #targetEntries: number;
  readonly #uid: number | undefined = typeof process.getuid === 'function' ? process.getuid() : undefined;
  readonly #slots = new Semaphore(MAX_IN_FLIGHT);

  #ready: Promise<void> | undefined;
  #counters: Counters | undefined;
  #lastScanAt = 0;
  /** Written by this process since the last scan; drives the resync. */
  #writtenSinceScan: Counters = { entries: 0, bytes: 0 };
  #evicting: Promise<void> | undefined;
  #lastEvictionError: BackendError | undefined;
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
    this.#triggerBytes = this.maxSizeMb * MIB * EVICT_TRIGGER;
    this.#targetBytes = this.maxSizeMb * MIB * EVICT_TARGET;
    this.#triggerEntries = this.maxEntryCount * EVICT_TRIGGER;
    this.#targetEntries = Math.floor(this.maxEntryCount * EVICT_TARGET);
  }

  /**
   * Builds a backend from `CACHEKIT_FILE_CACHE_DIR`, `CACHEKIT_FILE_MAX_SIZE_MB`, `CACHEKIT_FILE_MAX_VALUE_MB` and
   * `CACHEKIT_FILE_MAX_ENTRY_COUNT`. Explicit `options` win over the environment, which wins over the defaults.
   */
  static fromEnv(env: NodeJS.ProcessEnv = process.env, options: FileBackendOptions = {}): FileBackend {
    const fromEnv = (name: string, rule: { integer?: boolean }): number | undefined => {
      const value = envNumber(name, env);
      // Validate here so the error names the variable the user set, not the option it feeds.
      return value === undefined ? undefined : numberOption('environment', name, value, value, { min: 0, minInclusive: false, ...rule });
    };
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
    await this.#run('set', key, async () => {
      const tmp = await this.#writeTemp(name, data, { fsync: true });
      try {
        const previous = await lstatOrNull(this.#path(name));
        await rename(tmp, this.#path(name));
        this.#account(previous, data.byteLength);
      } catch (error) {
        await unlinkIfPresent(tmp);
        throw error;
      }
    });
    await this.#maybeEvict();
  }

  async add(key: string, value: Uint8Array, ttlSeconds?: number): Promise<boolean> {
    const data = this.#encode('add', key, value, ttlSeconds);
    const name = entryName(key);
    const stored = await this.#run('add', key, async () => {
      const tmp = await this.#writeTemp(name, data, { fsync: true });
      try {
        // link() fails with EEXIST when the target exists: set-if-absent in one atomic step, across processes.
        for (let attempt = 0; attempt < 3; attempt++) {
          try {
            await link(tmp, this.#path(name));
            this.#account(null, data.byteLength);
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
    if (stored) await this.#maybeEvict();
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
      this.#account(previous, null);
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
      const tmp = await this.#writeTemp(name, data, { fsync: true });
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

  async getMany(keys: readonly string[]): Promise<(Uint8Array | null)[]> {
    return Promise.all(keys.map((key) => this.get(key)));
  }

  async setMany(entries: readonly { key: string; value: Uint8Array; ttlSeconds?: number }[]): Promise<void> {
    await Promise.all(entries.map(({ key, value, ttlSeconds }) => this.set(key, value, ttlSeconds)));
  }

  /**
   * A lease lock shared by every process using this directory: `<hash>.lock` holding the token and expiry, put in
   * place with link() (atomic, fails if held). An expired lease is taken over; see {@link FileBackend#takeOver}.
   */
  async acquireLock(key: string, timeoutMs: number): Promise<string | null> {
    if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
      throw this.#error('permanent', 'acquireLock', key, `timeoutMs must be a positive number, got ${timeoutMs}`);
    }
    return this.#run('acquireLock', key, () => this.#acquireLease(`${entryName(key)}.lock`, timeoutMs));
  }

  async releaseLock(key: string, token: string): Promise<boolean> {
    return this.#run('releaseLock', key, () => this.#releaseLease(`${entryName(key)}.lock`, token));
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
        const tmp = await this.#writeTemp(probe, expected, { fsync: false });
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
      if (this.#counters === undefined) await this.#maybeEvict();
      details.entries = this.#counters?.entries ?? null;
      details.size_bytes = this.#counters?.bytes ?? null;
      details.max_size_mb = this.maxSizeMb;
      details.max_entry_count = this.maxEntryCount;
      if (this.#touchError) details.lru_touch_error = this.#touchError;
      if (!ok) return [false, { ...details, error: 'probe file read back different bytes' }];
      if (this.#lastEvictionError) return [false, { ...details, error: this.#lastEvictionError.message }];
      return [true, details];
    } catch (error) {
      details.latency_ms = performance.now() - started;
      return [false, { ...details, error: error instanceof Error ? error.message : String(error) }];
    }
  }

  /** Waits for an eviction pass in flight; later operations reject. Files stay on disk for the next process. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#evicting;
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
        if (expirySec !== null && (expirySec === 0 || Date.now() < expirySec * 1000)) {
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
    const now = Date.now();
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
    if (await unlinkIfPresent(file)) this.#account(current, null);
  }

  /** A new temp file in the cache directory, written completely (and fsynced when asked), then closed. */
  async #writeTemp(prefix: string, data: Uint8Array, options: { fsync: boolean; mtimeMs?: number }): Promise<string> {
    const tmp = this.#path(`${prefix}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    const handle = await open(tmp, CREATE_FLAGS, 0o600);
    try {
      let offset = 0;
      while (offset < data.byteLength) {
        const { bytesWritten } = await handle.write(data, offset, data.byteLength - offset, offset);
        offset += bytesWritten;
      }
      if (options.mtimeMs !== undefined) await handle.utimes(Date.now() / 1000, options.mtimeMs / 1000);
      if (options.fsync) await handle.sync();
    } catch (error) {
      await handle.close();
      await unlinkIfPresent(tmp);
      throw error;
    }
    await handle.close();
    return tmp;
  }

  /** Keeps the approximate counters current for one entry replaced (`previous`) by one of `size` bytes (or none). */
  #account(previous: Stats | null, size: number | null): void {
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

  // ------------------------------------------------------------------------------------------------------------
  // Leases (key locks and the eviction lock)
  // ------------------------------------------------------------------------------------------------------------

  async #acquireLease(name: string, timeoutMs: number): Promise<string | null> {
    const token = randomUUID();
    const expiresAtMs = Date.now() + timeoutMs;
    const body = Buffer.from(JSON.stringify({ token, expiresAtMs, pid: process.pid }));
    // mtime = expiry, so the directory scan can spot long-expired leases from an lstat alone.
    const tmp = await this.#writeTemp(name, body, { fsync: false, mtimeMs: expiresAtMs });
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          await link(tmp, this.#path(name));
          return token;
        } catch (error) {
          if (codeOf(error) !== 'EEXIST') throw error;
        }
        const held = await this.#readLease(name);
        if (held !== null && held.expiresAtMs > Date.now()) return null;
        if (held !== null && (await this.#takeOver(name, held)) === 'changed') return null;
      }
      return null;
    } finally {
      await unlinkIfPresent(tmp);
    }
  }

  async #releaseLease(name: string, token: string): Promise<boolean> {
    const held = await this.#readLease(name);
    if (held === null || held.token !== token) return false;
    const live = held.expiresAtMs > Date.now();
    return (await this.#takeOver(name, held)) === 'removed' && live;
  }

  async #readLease(name: string): Promise<Lease | null> {
    let handle: FileHandle;
    try {
      handle = await open(this.#path(name), READ_FLAGS);
    } catch (error) {
      if (codeOf(error) === 'ENOENT') return null;
      // A symlink planted as a lease: never followed, treated as a dead lease that may be taken over (and removed).
      if (codeOf(error) === 'ELOOP') return { raw: '\u0000symlink', token: undefined, expiresAtMs: 0 };
      throw error;
    }
    let raw: string;
    try {
      const buffer = Buffer.alloc(Math.min((await handle.stat()).size, 4096));
      raw = buffer.subarray(0, await readFully(handle, buffer, 0)).toString('utf8');
    } finally {
      await handle.close();
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
    }
    // Unreadable (e.g. emptied by a crash) or not ours: a dead lease, free to take over.
    if (parsed === null || typeof parsed !== 'object') return { raw, token: undefined, expiresAtMs: 0 };
    const { token, expiresAtMs } = parsed as { token?: unknown; expiresAtMs?: unknown };
    return {
      raw,
      token: typeof token === 'string' ? token : undefined,
      expiresAtMs: typeof expiresAtMs === 'number' ? expiresAtMs : 0,
    };
  }

  /**
   * Removes the lease `seen` only if it is still the one in place: it is renamed aside (atomic, so only one process
   * moves it), compared with what was read, and put back with link() if it changed in between. Remaining race: if the
   * lease changed between the read and the rename and a third process creates a lease while it is aside, the
   * put-back fails and the changed lease is lost. That takes three contenders within microseconds of an expiry.
   */
  async #takeOver(name: string, seen: Lease): Promise<'removed' | 'gone' | 'changed'> {
    const aside = this.#path(`${name}.${process.pid}.${randomBytes(6).toString('hex')}.aside`);
    try {
      await rename(this.#path(name), aside);
    } catch (error) {
      if (codeOf(error) === 'ENOENT') return 'gone';
      throw error;
    }
    try {
      const moved = await this.#readLease(path.basename(aside));
      if (moved?.raw === seen.raw) return 'removed';
      try {
        await link(aside, this.#path(name));
      } catch (error) {
        // EEXIST: a newer lease is already in place. ENOENT: the scan removed the aside copy as long expired.
        if (codeOf(error) !== 'EEXIST' && codeOf(error) !== 'ENOENT') throw error;
      }
      return 'changed';
    } finally {
      await unlinkIfPresent(aside);
    }
  }

  // ------------------------------------------------------------------------------------------------------------
  // Eviction
  // ------------------------------------------------------------------------------------------------------------

  /** Starts an eviction pass when the counters say so (or need a resync). One pass per process at a time. */
  async #maybeEvict(): Promise<void> {
    if (this.#evicting || this.#closed) return;
    const counters = this.#counters;
    const written = this.#writtenSinceScan;
    const due =
      counters === undefined ||
      counters.bytes > this.#triggerBytes ||
      counters.entries > this.#triggerEntries ||
      written.bytes > this.maxSizeMb * MIB * RESYNC_WRITTEN_SHARE ||
      written.entries > this.maxEntryCount * RESYNC_WRITTEN_SHARE ||
      Date.now() - this.#lastScanAt > RESYNC_INTERVAL_MS;
    if (!due) return;
    this.#evicting = this.#evictionPass().finally(() => {
      this.#evicting = undefined;
    });
    await this.#evicting;
  }

  /**
   * Scans the directory under the cross-process eviction lease, resyncs the counters and, past 90% of a limit, removes
   * the least recently read entries (oldest mtime) down to 70%. Failures are kept for healthCheck: the value that
   * triggered the pass is already stored, so set() does not fail for them.
   */
  async #evictionPass(): Promise<void> {
    let token: string | null = null;
    try {
      await this.#ensureDir();
      token = await this.#acquireLease(EVICTION_LOCK, EVICTION_LEASE_MS);
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
      this.#lastScanAt = Date.now();
      // Writes that completed during the scan may or may not be in it; count them towards the next resync.
      this.#writtenSinceScan = {
        entries: this.#writtenSinceScan.entries - writtenBefore.entries,
        bytes: this.#writtenSinceScan.bytes - writtenBefore.bytes,
      };
      this.#lastEvictionError = undefined;
    } catch (error) {
      this.#lastEvictionError = this.#toBackendError('evict', undefined, error);
    } finally {
      if (token !== null) {
        await this.#releaseLease(EVICTION_LOCK, token).catch((error: unknown) => {
          this.#lastEvictionError = this.#toBackendError('evict', undefined, error);
        });
      }
    }
  }

  /** Entry files with size and mtime; removes orphaned temp files and long-expired key leases on the way. */
  async #scan(): Promise<{ name: string; size: number; mtimeMs: number; ino: number }[]> {
    const names = await readdir(this.cacheDir);
    const found: { name: string; size: number; mtimeMs: number; ino: number }[] = [];
    const now = Date.now();
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
            const lease = await this.#readLease(name);
            if (lease !== null && lease.expiresAtMs < now) await this.#takeOver(name, lease);
          }
        }),
      );
    }
    return found;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Directory, concurrency and errors
  // ------------------------------------------------------------------------------------------------------------

  /**
   * Creates the directory (0700) or checks the existing one. Refused with a permanent BackendError, on first use
   * rather than in the constructor: the directory is state that can change, and a bad one must not crash the app.
   */
  #ensureDir(): Promise<void> {
    this.#ready ??= this.#checkDir().catch((error: unknown) => {
      this.#ready = undefined; // retried by the next operation: the directory may be fixed meanwhile
      throw error;
    });
    return this.#ready;
  }

  async #checkDir(): Promise<void> {
    try {
      await mkdir(this.cacheDir, { recursive: true, mode: 0o700 });
    } catch (error) {
      if (codeOf(error) !== 'EEXIST') throw error; // EEXIST: something that is not a directory; reported below
    }
    const stats = await lstat(this.cacheDir);
    const refuse = (why: string) =>
      new BackendError(`cacheDir ${this.cacheDir} ${why}`, { kind: 'permanent', backend: BACKEND, operation: 'open' });
    if (stats.isSymbolicLink()) throw refuse('is a symbolic link; symlinks are never followed, point cacheDir at the real directory');
    if (!stats.isDirectory()) throw refuse('exists and is not a directory');
    if (this.#uid !== undefined && stats.uid !== this.#uid) {
      throw refuse(`is owned by uid ${stats.uid}, not by this process (uid ${this.#uid}); another user could plant entries`);
    }
    if (this.#uid !== undefined && (stats.mode & 0o002) !== 0) {
      throw refuse(`is world-writable (mode ${(stats.mode & 0o7777).toString(8)}); anyone could plant entries (chmod 700 it)`);
    }
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
      throw this.#toBackendError(operation, key, error);
    } finally {
      this.#slots.release();
    }
  }

  #toBackendError(operation: string, key: string | undefined, error: unknown): BackendError {
    if (BackendError.is(error)) return error;
    const code = codeOf(error);
    const kind: BackendErrorKind =
      code === undefined
        ? 'unknown'
        : code === 'ETIMEDOUT'
          ? 'timeout'
          : TRANSIENT_CODES.has(code)
            ? 'transient'
            : PERMANENT_CODES.has(code)
              ? 'permanent'
              : 'unknown';
    const message = error instanceof Error ? error.message : String(error);
    return new BackendError(`${operation} failed: ${message}`, { kind, backend: BACKEND, operation, key, cause: error });
  }

  #error(kind: BackendErrorKind, operation: string, key: string | undefined, message: string): BackendError {
    return new BackendError(`${operation}: ${message}`, { kind, backend: BACKEND, operation, key });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

/** sha256 hex of the key's UTF-8. Keys with lone surrogates (which UTF-8 cannot carry) hash their UTF-16 units. */
function entryName(key: string): string {
  const hash = createHash('sha256');
  if (LONE_SURROGATE.test(key)) hash.update('\u0000utf16:').update(Buffer.from(key, 'utf16le'));
  else hash.update(key, 'utf8');
  return hash.digest('hex');
}

/** Finite, not negative, and small enough that the expiry in milliseconds stays an exact integer. */
function validTtl(ttlSeconds: number): boolean {
  return typeof ttlSeconds === 'number' && Number.isFinite(ttlSeconds) && ttlSeconds >= 0 && ttlSeconds < 1e12;
}

/** Unix seconds, rounded up so an entry never expires before its TTL (it may live up to one second longer). */
function expiryOf(ttlSeconds: number | undefined): number {
  return ttlSeconds && ttlSeconds > 0 ? Math.ceil((Date.now() + ttlSeconds * 1000) / 1000) : 0;
}

function remainingOf(expirySec: number): number | null {
  return expirySec === 0 ? null : Math.max(0, expirySec * 1000 - Date.now());
}

function encodeEntry(value: Uint8Array, expirySec: number): Buffer {
  const data = Buffer.allocUnsafeSlow(HEADER_BYTES + value.byteLength);
  data[0] = MAGIC_0;
  data[1] = MAGIC_1;
  data[2] = FORMAT_VERSION;
  data[3] = 0; // reserved
  data.writeUInt16BE(0, 4); // flags: no compression or encryption at this layer
  data.writeBigUInt64BE(BigInt(expirySec), 6);
  data.set(value, HEADER_BYTES);
  return data;
}

/** The expiry in unix seconds, or `null` when the header is not ours (foreign file, other version, unknown flags). */
function parseHeader(buffer: Buffer): number | null {
  if (buffer.byteLength < HEADER_BYTES || buffer[0] !== MAGIC_0 || buffer[1] !== MAGIC_1) return null;
  if (buffer[2] !== FORMAT_VERSION || buffer[3] !== 0 || buffer.readUInt16BE(4) !== 0) return null;
  return Number(buffer.readBigUInt64BE(6));
}

async function readFully(handle: FileHandle, buffer: Buffer, position: number): Promise<number> {
  let offset = 0;
  while (offset < buffer.byteLength) {
    const { bytesRead } = await handle.read(buffer, offset, buffer.byteLength - offset, position + offset);
    if (bytesRead === 0) break;
    offset += bytesRead;
  }
  return offset;
}

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

async function lstatOrNull(file: string): Promise<Stats | null> {
  try {
    return await lstat(file);
  } catch (error) {
    if (codeOf(error) === 'ENOENT') return null;
    throw error;
  }
}

/** `true` when removed, `false` when it was already gone. */
async function unlinkIfPresent(file: string): Promise<boolean> {
  try {
    await unlink(file);
    return true;
  } catch (error) {
    if (codeOf(error) === 'ENOENT') return false;
    throw error;
  }
}

/** A counting semaphore bounding file operations in flight. */
class Semaphore {
  #free: number;
  readonly #waiting: (() => void)[] = [];
  constructor(size: number) {
    this.#free = size;
  }
  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free -= 1;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }
  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free += 1;
  }
}
