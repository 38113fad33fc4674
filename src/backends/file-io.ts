/**
 * The file-system primitives under FileBackend: open flags that never follow symlinks, complete reads and writes,
 * removal that tolerates a file already gone, the cache directory's safety check, the bound on operations in
 * flight, and the mapping of errno codes onto BackendError kinds.
 */
import { constants as fsConstants, type Stats } from 'node:fs';
import { lstat, mkdir, open, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { codeOf, wrapError } from './support.js';
import type { BackendErrorKind } from '../protocol/backend.js';
import { BackendError } from '../protocol/backend.js';
import { nowMs } from '../shared/clock.js';
import { randomBytes } from '../shared/random.js';

export const BACKEND = 'file';

/** Per-instance bound on file operations in flight (file descriptors, memory). */
export const MAX_IN_FLIGHT = 32;

const O_NOFOLLOW = fsConstants.O_NOFOLLOW ?? 0;
// O_NONBLOCK: a FIFO planted at an entry's path must not block open(); it has no effect on regular files.
export const READ_FLAGS = fsConstants.O_RDONLY | O_NOFOLLOW | (fsConstants.O_NONBLOCK ?? 0);
const CREATE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | O_NOFOLLOW;

const TRANSIENT_CODES = new Set(['ENOSPC', 'EDQUOT', 'EMFILE', 'ENFILE', 'EAGAIN', 'EWOULDBLOCK', 'EBUSY', 'EINTR', 'ESTALE', 'ENOENT', 'ENOMEM']);
const PERMANENT_CODES = new Set([
  'EACCES',
  'EPERM',
  'ELOOP',
  'EROFS',
  'ENOTDIR',
  'EISDIR',
  'ENAMETOOLONG',
  'EXDEV',
  'EINVAL',
  'ENOTSUP',
  'EOPNOTSUPP',
  'EEXIST',
  'ENOTEMPTY',
  'EMLINK',
  'EFBIG',
]);

export async function readFully(handle: FileHandle, buffer: Buffer, position: number): Promise<number> {
  let offset = 0;
  while (offset < buffer.byteLength) {
    const { bytesRead } = await handle.read(buffer, offset, buffer.byteLength - offset, position + offset);
    if (bytesRead === 0) break;
    offset += bytesRead;
  }
  return offset;
}

export async function lstatOrNull(file: string): Promise<Stats | null> {
  try {
    return await lstat(file);
  } catch (error) {
    if (codeOf(error) === 'ENOENT') return null;
    throw error;
  }
}

/** `true` when removed, `false` when it was already gone. */
export async function unlinkIfPresent(file: string): Promise<boolean> {
  try {
    await unlink(file);
    return true;
  } catch (error) {
    if (codeOf(error) === 'ENOENT') return false;
    throw error;
  }
}

/** A new temp file in `dir`, written completely (and fsynced when asked), then closed. */
export async function writeTemp(dir: string, prefix: string, data: Uint8Array, options: { fsync: boolean; mtimeMs?: number }): Promise<string> {
  const tmp = path.join(dir, `${prefix}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(tmp, CREATE_FLAGS, 0o600);
  try {
    let offset = 0;
    while (offset < data.byteLength) {
      const { bytesWritten } = await handle.write(data, offset, data.byteLength - offset, offset);
      offset += bytesWritten;
    }
    if (options.mtimeMs !== undefined) await handle.utimes(nowMs() / 1000, options.mtimeMs / 1000);
    if (options.fsync) await handle.sync();
  } catch (error) {
    await handle.close();
    await unlinkIfPresent(tmp);
    throw error;
  }
  await handle.close();
  return tmp;
}

/**
 * Creates the cache directory (0700) or checks the existing one: refused with a permanent BackendError when it is a
 * symlink, not a directory, owned by another user (`uid`, when the platform has one) or world-writable.
 */
export async function checkCacheDir(dir: string, uid: number | undefined): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    if (codeOf(error) !== 'EEXIST') throw error; // EEXIST: something that is not a directory; reported below
  }
  const stats = await lstat(dir);
  const refuse = (why: string) => new BackendError(`cacheDir ${dir} ${why}`, { kind: 'permanent', backend: BACKEND, operation: 'open' });
  if (stats.isSymbolicLink()) throw refuse('is a symbolic link; symlinks are never followed, point cacheDir at the real directory');
  if (!stats.isDirectory()) throw refuse('exists and is not a directory');
  if (uid !== undefined && stats.uid !== uid) {
    throw refuse(`is owned by uid ${stats.uid}, not by this process (uid ${uid}); another user could plant entries`);
  }
  if (uid !== undefined && (stats.mode & 0o002) !== 0) {
    throw refuse(`is world-writable (mode ${(stats.mode & 0o7777).toString(8)}); anyone could plant entries (chmod 700 it)`);
  }
}

function kindOf(error: unknown): BackendErrorKind {
  const code = codeOf(error);
  if (code === undefined) return 'unknown';
  if (code === 'ETIMEDOUT') return 'timeout';
  if (TRANSIENT_CODES.has(code)) return 'transient';
  return PERMANENT_CODES.has(code) ? 'permanent' : 'unknown';
}

/** A file-system failure as a BackendError, its kind from the errno code. */
export function toFileError(operation: string, key: string | undefined, error: unknown): BackendError {
  return wrapError(BACKEND, operation, key, error, kindOf);
}

/** A counting semaphore bounding file operations in flight. */
export class Semaphore {
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
