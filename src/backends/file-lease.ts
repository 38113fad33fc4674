/**
 * Lease files shared by every process using one cache directory: key locks (`<hash>.lock`) and the directory-wide
 * eviction lock. A lease holds its token and expiry as JSON; it is put in place with link() (atomic, fails if held),
 * and an expired one is taken over (see {@link takeOver}).
 */
import { link, open, rename, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { READ_FLAGS, readFully, unlinkIfPresent, writeTemp } from './file-io.js';
import { codeOf } from './support.js';
import { nowMs } from '../shared/clock.js';
import { randomBytes, randomUUID } from '../shared/random.js';

export interface Lease {
  /** The file's exact contents, to recognise it again after moving it aside. */
  raw: string;
  token: string | undefined;
  expiresAtMs: number;
}

/** A new lease `name` in `dir` for `timeoutMs`: its token, or `null` while someone else holds a live one. */
export async function acquireLease(dir: string, name: string, timeoutMs: number): Promise<string | null> {
  const token = randomUUID();
  const expiresAtMs = nowMs() + timeoutMs;
  const body = Buffer.from(JSON.stringify({ token, expiresAtMs, pid: process.pid }));
  // mtime = expiry, so the directory scan can spot long-expired leases from an lstat alone.
  const tmp = await writeTemp(dir, name, body, { fsync: false, mtimeMs: expiresAtMs });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await link(tmp, path.join(dir, name));
        return token;
      } catch (error) {
        if (codeOf(error) !== 'EEXIST') throw error;
      }
      const held = await readLease(dir, name);
      if (held !== null && held.expiresAtMs > nowMs()) return null;
      if (held !== null && (await takeOver(dir, name, held)) === 'changed') return null;
    }
    return null;
  } finally {
    await unlinkIfPresent(tmp);
  }
}

/**
 * Runs `fn` holding lease `name`, waiting for it (1 ms polls) at most `waitMs`; `null` when it stayed held that long.
 * The lease lasts `leaseMs`, so a holder that crashed blocks the others no longer.
 */
export async function withLease<T>(dir: string, name: string, leaseMs: number, waitMs: number, fn: () => Promise<T>): Promise<{ value: T } | null> {
  const deadline = nowMs() + waitMs;
  let token: string | null;
  while ((token = await acquireLease(dir, name, leaseMs)) === null) {
    if (nowMs() > deadline) return null;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  try {
    return { value: await fn() };
  } finally {
    await releaseLease(dir, name, token);
  }
}

/** Removes the lease if `token` still holds it; `true` only when it was also still live. */
export async function releaseLease(dir: string, name: string, token: string): Promise<boolean> {
  const held = await readLease(dir, name);
  if (held === null || held.token !== token) return false;
  const live = held.expiresAtMs > nowMs();
  return (await takeOver(dir, name, held)) === 'removed' && live;
}

export async function readLease(dir: string, name: string): Promise<Lease | null> {
  let handle: FileHandle;
  try {
    handle = await open(path.join(dir, name), READ_FLAGS);
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
export async function takeOver(dir: string, name: string, seen: Lease): Promise<'removed' | 'gone' | 'changed'> {
  const aside = path.join(dir, `${name}.${process.pid}.${randomBytes(6).toString('hex')}.aside`);
  try {
    await rename(path.join(dir, name), aside);
  } catch (error) {
    if (codeOf(error) === 'ENOENT') return 'gone';
    throw error;
  }
  try {
    const moved = await readLease(dir, path.basename(aside));
    if (moved?.raw === seen.raw) return 'removed';
    try {
      await link(aside, path.join(dir, name));
    } catch (error) {
      // EEXIST: a newer lease is already in place. ENOENT: the scan removed the aside copy as long expired.
      if (codeOf(error) !== 'EEXIST' && codeOf(error) !== 'ENOENT') throw error;
    }
    return 'changed';
  } finally {
    await unlinkIfPresent(aside);
  }
}
