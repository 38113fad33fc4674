/**
 * FileBackend's entry files: reading one (header checked, expired and foreign files discarded, LRU mtime refreshed)
 * and replacing one atomically (temp file + rename), with the evictor's counters kept in step.
 */
import type { Stats } from 'node:fs';
import { open, rename, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Evictor } from './file-eviction.js';
import { HEADER_BYTES, parseHeader } from './file-format.js';
import { BACKEND, READ_FLAGS, lstatOrNull, readFully, unlinkIfPresent, writeTemp } from './file-io.js';
import { codeOf } from './support.js';
import { BackendError } from '../protocol/backend.js';
import { nowMs } from '../shared/clock.js';

/** A read refreshes the entry's mtime (its LRU recency) at most this often: hot keys cost no metadata write. */
const TOUCH_INTERVAL_MS = 1_000;

export interface ReadResult {
  /** Unix seconds; 0 = never expires. */
  expirySec: number;
  /** The payload when read in full. */
  payload?: Buffer;
  ino: number;
}

export class EntryFiles {
  readonly #uid: number | undefined = typeof process.getuid === 'function' ? process.getuid() : undefined;
  /** Set when refreshing mtimes is impossible (e.g. a read-only cache directory); reported by healthCheck. */
  touchError: string | undefined;

  constructor(
    readonly dir: string,
    readonly maxValueBytes: number,
    readonly evictor: Evictor,
  ) {}

  get uid(): number | undefined {
    return this.#uid;
  }

  path(name: string): string {
    return path.join(this.dir, name);
  }

  /** Writes `data` to a temp file and renames it over entry `name`: readers see the old file or the new one, whole. */
  async replace(name: string, data: Uint8Array, fsync: boolean): Promise<void> {
    const tmp = await writeTemp(this.dir, name, data, { fsync });
    try {
      const previous = await lstatOrNull(this.path(name));
      await rename(tmp, this.path(name));
      this.evictor.account(previous, data.byteLength);
    } catch (error) {
      await unlinkIfPresent(tmp);
      throw error;
    }
  }

  /**
   * Opens an entry without following symlinks and validates its header. Missing, foreign, truncated and expired files
   * are misses; the last three are removed. `touch` refreshes the mtime that eviction uses as the last read time.
   */
  async read(name: string, full: boolean, touch: boolean): Promise<ReadResult | null> {
    const file = this.path(name);
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
      if (full && stats.isFile() && stats.size > HEADER_BYTES + this.maxValueBytes) return null;
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
    if (this.touchError !== undefined || now - stats.mtimeMs < TOUCH_INTERVAL_MS) return;
    try {
      await handle.utimes(now / 1000, now / 1000);
    } catch (error) {
      // A read-only cache (e.g. baked into an image) still serves reads; LRU recency is lost and healthCheck says so.
      if (!['EROFS', 'EPERM', 'EACCES'].includes(codeOf(error) ?? '')) throw error;
      this.touchError = `cannot refresh mtimes for LRU (${codeOf(error)}); eviction falls back to write order`;
    }
  }

  /** Removes a bad file if `same` confirms it is still the one seen, not a fresh entry another process renamed there. */
  async #discard(file: string, same: (current: Stats) => boolean): Promise<void> {
    const current = await lstatOrNull(file);
    if (current === null || !same(current)) return;
    if (current.isDirectory()) {
      throw new BackendError(`a directory is in the way of an entry file: ${file}`, { kind: 'permanent', backend: BACKEND });
    }
    if (await unlinkIfPresent(file)) this.evictor.account(current, null);
  }
}
