/**
 * FileBackend specifics the conformance suite cannot see: the on-disk format, modes, symlinks, corrupt files, LRU
 * eviction, limits and option validation. Multi-process behaviour is in file-multiprocess.test.ts.
 */
import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileBackend } from '../../src/backends/file.js';
import { rejection, configError } from '../support/errors.js';

const MIB = 1024 * 1024;
const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | null) => (value === null ? null : Buffer.from(value).toString());
const sha256 = (key: string) => createHash('sha256').update(key, 'utf8').digest('hex');

let root: string;
let counter = 0;
/** A fresh, not yet existing cache directory. */
const freshDir = () => path.join(root, `dir-${++counter}`);
const entryPath = (dir: string, key: string) => path.join(dir, sha256(key));

/** An entry file as the format defines it: `CK`, version, reserved, flags u16 BE, expiry u64 BE, payload. */
function entryFile(payload: string, expirySec: number, { version = 1, flags = 0 } = {}): Buffer {
  const header = Buffer.alloc(14);
  header.write('CK', 0, 'latin1');
  header[2] = version;
  header.writeUInt16BE(flags, 4);
  header.writeBigUInt64BE(BigInt(expirySec), 6);
  return Buffer.concat([header, Buffer.from(payload)]);
}

async function entryNames(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => /^[0-9a-f]{64}$/.test(name));
}

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'ck-file-disk-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('FileBackend: on-disk format', () => {
  it('writes one file per key, named by the sha256 of the key, with the CK header', async () => {
    const dir = freshDir();
    const backend = new FileBackend({ cacheDir: dir });
    const before = Math.floor(Date.now() / 1000);
    await backend.set('user:1', bytes('payload'), 100);
    await backend.set('user:2', bytes('forever'));
    const file = await readFile(entryPath(dir, 'user:1'));
    expect(file.subarray(0, 2).toString('latin1')).toBe('CK');
    expect(file[2]).toBe(1);
    expect(file[3]).toBe(0);
    expect(file.readUInt16BE(4)).toBe(0);
    const expiry = Number(file.readBigUInt64BE(6));
    expect(expiry).toBeGreaterThanOrEqual(before + 100);
    expect(expiry).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 100);
    expect(file.subarray(14).toString()).toBe('payload');
    expect((await readFile(entryPath(dir, 'user:2'))).readBigUInt64BE(6)).toBe(0n);
    expect(await entryNames(dir)).toHaveLength(2);
    await backend.close();
  });

  it('reads a file written by another implementation of the format', async () => {
    const dir = freshDir();
    const backend = new FileBackend({ cacheDir: dir });
    await backend.exists('warm'); // creates the directory
    await writeFile(entryPath(dir, 'foreign'), entryFile('from elsewhere', Math.floor(Date.now() / 1000) + 50), { mode: 0o600 });
    expect(text(await backend.get('foreign'))).toBe('from elsewhere');
    const ttl = await backend.getTtl('foreign');
    expect(ttl).toBeGreaterThan(45);
    expect(ttl).toBeLessThanOrEqual(50);
    await backend.close();
  });

  it('creates the directory 0700 and files 0600 whatever the umask', async () => {
    const dir = path.join(freshDir(), 'nested');
    const previous = process.umask(0); // modes must come from the backend, not from a restrictive umask
    try {
      const backend = new FileBackend({ cacheDir: dir });
      await backend.set('k', bytes('v'));
      const token = await backend.acquireLock('k', 5_000);
      expect(token).not.toBeNull();
      expect((await stat(dir)).mode & 0o777).toBe(0o700);
      expect((await stat(entryPath(dir, 'k'))).mode & 0o777).toBe(0o600);
      expect((await stat(`${entryPath(dir, 'k')}.lock`)).mode & 0o777).toBe(0o600);
      await backend.close();
    } finally {
      process.umask(previous);
    }
  });

  it('leaves no temp, probe or aside files behind', async () => {
    const dir = freshDir();
    const backend = new FileBackend({ cacheDir: dir });
    await backend.set('a', bytes('1'));
    await backend.add('a', bytes('2'));
    await backend.add('b', bytes('3'));
    await backend.refreshTtl('a', 30);
    const token = await backend.acquireLock('a', 1_000);
    await backend.releaseLock('a', token!);
    const [healthy] = await backend.healthCheck();
    expect(healthy).toBe(true);
    expect((await readdir(dir)).sort()).toEqual([sha256('a'), sha256('b')].sort());
    await backend.close();
  });
});

describe('FileBackend: symlinks and foreign files', () => {
  it('never follows a symlink planted at a key path: a miss, and the target is untouched', async () => {
    const dir = freshDir();
    const backend = new FileBackend({ cacheDir: dir });
    await backend.exists('warm');
    const target = path.join(root, `secret-${counter}`);
    const secret = entryFile('secret content', 0);
    await writeFile(target, secret, { mode: 0o600 });
    const link = entryPath(dir, 'victim');

    const reads: [string, () => Promise<unknown>, unknown][] = [
      ['get', () => backend.get('victim'), null],
      ['getWithTtl', () => backend.getWithTtl('victim'), null],
      ['exists', () => backend.exists('victim'), false],
      ['getTtl', () => backend.getTtl('victim'), undefined],
    ];
    for (const [name, read, miss] of reads) {
      await symlink(target, link);
      expect(await read(), name).toBe(miss);
      await expect(lstat(link), `${name} removes the link (not its target)`).rejects.toMatchObject({ code: 'ENOENT' });
    }
    await symlink(target, link);
    await backend.set('victim', bytes('new value')); // rename replaces the link itself
    expect((await lstat(link)).isSymbolicLink()).toBe(false);
    expect(text(await backend.get('victim'))).toBe('new value');
    expect(Buffer.compare(await readFile(target), secret)).toBe(0);
    expect((await stat(target)).mode & 0o777).toBe(0o600);
    await backend.close();
  });

  it('never follows a symlink planted as a lock file', async () => {
    const dir = freshDir();
    const backend = new FileBackend({ cacheDir: dir });
    await backend.exists('warm');
    const target = path.join(root, `lock-target-${counter}`);
    await writeFile(target, 'do not touch');
    await symlink(target, `${entryPath(dir, 'locked')}.lock`);
    const token = await backend.acquireLock('locked', 5_000); // a symlink is no live lease: taken over, not followed
    expect(token).not.toBeNull();
    expect((await lstat(`${entryPath(dir, 'locked')}.lock`)).isSymbolicLink()).toBe(false);
    expect(await readFile(target, 'utf8')).toBe('do not touch');
    expect(await backend.releaseLock('locked', token!)).toBe(true);
    await backend.close();
  });

  it('treats truncated, foreign, other-version and flagged files as misses and removes them', async () => {
    const dir = freshDir();
    const backend = new FileBackend({ cacheDir: dir });
    await backend.set('truncated', bytes('a complete value'));
    await truncate(entryPath(dir, 'truncated'), 9); // shorter than the header
    await backend.set('cut-payload', bytes('payload'));
    const cases: [string, Buffer][] = [
      ['foreign', Buffer.from('this is not a cachekit file at all')],
      ['empty', Buffer.alloc(0)],
      ['version-2', entryFile('v', 0, { version: 2 })],
      ['flagged', entryFile('v', 0, { flags: 1 })],
    ];
    for (const [key, content] of cases) await writeFile(entryPath(dir, key), content, { mode: 0o600 });
    for (const key of ['truncated', ...cases.map(([key]) => key)]) {
      expect(await backend.get(key), key).toBeNull();
      await expect(lstat(entryPath(dir, key)), key).rejects.toMatchObject({ code: 'ENOENT' });
    }
    await writeFile(entryPath(dir, 'foreign'), Buffer.from('not a cachekit file either'));
    expect(await backend.exists('foreign')).toBe(false);
    expect(await backend.delete('foreign')).toBe(false);
    expect(text(await backend.get('cut-payload'))).toBe('payload');
    await backend.close();
  });

  it('treats expired entries as absent everywhere and removes them', async () => {
    const dir = freshDir();
    const backend = new FileBackend({ cacheDir: dir });
    await backend.exists('warm');
    const past = Math.floor(Date.now() / 1000) - 10;
    for (const key of ['e1', 'e2', 'e3', 'e4']) await writeFile(entryPath(dir, key), entryFile('old', past), { mode: 0o600 });
    expect(await backend.get('e1')).toBeNull();
    await expect(lstat(entryPath(dir, 'e1'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await backend.exists('e2')).toBe(false);
    expect(await backend.getTtl('e2')).toBeUndefined();
    expect(await backend.refreshTtl('e2', 10)).toBe(false);
    expect(await backend.delete('e3')).toBe(false);
    expect(await backend.add('e4', bytes('fresh'), 60)).toBe(true); // an expired entry counts as absent
    expect(text(await backend.get('e4'))).toBe('fresh');
    expect(await backend.add('e4', bytes('again'), 60)).toBe(false);
    await backend.close();
  });

  it('refreshTtl rewrites the expiry and keeps the payload', async () => {
    const dir = freshDir();
    const backend = new FileBackend({ cacheDir: dir });
    await backend.set('k', bytes('value'), 5);
    expect(await backend.refreshTtl('k', 500)).toBe(true);
    expect(await backend.getTtl('k')).toBeGreaterThan(490);
    expect(text(await backend.get('k'))).toBe('value');
    await expect(backend.refreshTtl('k', 0)).rejects.toMatchObject({ kind: 'permanent' });
    await backend.close();
  });
});

describe('FileBackend: the cache directory', () => {
  it('refuses a cacheDir that is a symlink, with a permanent BackendError', async () => {
    const real = freshDir();
    await mkdir(real, { mode: 0o700 });
    const link = `${real}-link`;
    await symlink(real, link);
    const backend = new FileBackend({ cacheDir: link });
    const error = await rejection(backend.set('k', bytes('v')));
    expect(error.kind).toBe('permanent');
    expect(error.message).toMatch(/symbolic link/);
    await rejection(backend.get('k'));
    const [healthy, details] = await backend.healthCheck();
    expect(healthy).toBe(false);
    expect(details.backend_type).toBe('file');
    expect(String(details.error)).toMatch(/symbolic link/);
    expect(await readdir(real)).toEqual([]);
    await backend.close();
  });

  it('refuses a cacheDir that is a file or world-writable, and maps fs errors to kinds', async () => {
    const file = freshDir();
    await writeFile(file, 'x');
    const onFile = new FileBackend({ cacheDir: file });
    const notDir = await rejection(onFile.set('k', bytes('v')));
    expect(notDir.kind).toBe('permanent');
    expect(notDir.message).toMatch(/not a directory/);

    const below = new FileBackend({ cacheDir: path.join(file, 'sub') }); // ENOTDIR from mkdir
    const enotdir = await rejection(below.get('k'));
    expect(enotdir.kind).toBe('permanent');
    expect(enotdir.message).toMatch(/^\[cachekit\] \[file\] /);
    expect((enotdir.cause as NodeJS.ErrnoException).code).toBe('ENOTDIR');

    const open = freshDir();
    await mkdir(open);
    await chmod(open, 0o777);
    const worldWritable = new FileBackend({ cacheDir: open });
    const error = await rejection(worldWritable.set('k', bytes('v')));
    expect(error.kind).toBe('permanent');
    expect(error.message).toMatch(/world-writable/);
    await chmod(open, 0o700); // fixed: the next operation checks again and succeeds
    await worldWritable.set('k', bytes('v'));
    expect(text(await worldWritable.get('k'))).toBe('v');
  });

  it('recreates a directory removed while running', async () => {
    const dir = freshDir();
    const backend = new FileBackend({ cacheDir: dir });
    await backend.set('k', bytes('v'));
    await rm(dir, { recursive: true });
    expect(await backend.get('k')).toBeNull();
    await backend.set('k', bytes('again'));
    expect(text(await backend.get('k'))).toBe('again');
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    await backend.close();
  });

  it('reports health details with entries and size', async () => {
    const dir = freshDir();
    const backend = new FileBackend({ cacheDir: dir });
    await backend.set('a', new Uint8Array(100));
    await backend.set('b', new Uint8Array(50));
    const [healthy, details] = await backend.healthCheck();
    expect(healthy).toBe(true);
    expect(details).toMatchObject({ backend_type: 'file', cache_dir: dir, entries: 2, size_bytes: 150 + 2 * 14 });
    expect(details.latency_ms).toBeGreaterThanOrEqual(0);
    await backend.close();
    await rejection(backend.get('a'));
    expect((await backend.healthCheck())[0]).toBe(false);
  });
});

describe('FileBackend: limits and eviction', () => {
  /** Gives each entry a distinct old mtime, the first key the oldest: their "last read" order. */
  async function age(dir: string, keys: string[]): Promise<void> {
    const base = Date.now() / 1000 - 10_000;
    for (const [i, key] of keys.entries()) await utimes(entryPath(dir, key), base + i, base + i);
  }

  it('rejects a value over maxValueMb with a permanent error and writes nothing', async () => {
    const dir = freshDir();
    const backend = new FileBackend({ cacheDir: dir, maxSizeMb: 4, maxValueMb: 1 });
    await backend.set('fits', new Uint8Array(MIB));
    const error = await rejection(backend.set('too-big', new Uint8Array(MIB + 1)));
    expect(error.kind).toBe('permanent');
    expect(error.message).toMatch(/maxValueMb/);
    expect(error.key).toBe('too-big');
    await rejection(backend.add('too-big', new Uint8Array(MIB + 1)));
    expect(await backend.exists('too-big')).toBe(false);
    expect(await readdir(dir)).toEqual([sha256('fits')]);
    await backend.close();
  });

  it('does not load or delete an entry larger than its own maxValueMb written by a larger-configured process', async () => {
    const dir = freshDir();
    const large = new FileBackend({ cacheDir: dir, maxSizeMb: 8, maxValueMb: 4 });
    const small = new FileBackend({ cacheDir: dir, maxSizeMb: 8, maxValueMb: 1 });
    await large.set('big', new Uint8Array(2 * MIB).fill(7));
    expect(await small.get('big')).toBeNull();
    expect(await small.exists('big')).toBe(true);
    expect((await large.get('big'))?.byteLength).toBe(2 * MIB);
    expect(await small.delete('big')).toBe(true);
    await large.close();
    await small.close();
  });

  it('evicts by entry count past 90%, least recently read first, down to 70%', async () => {
    const dir = freshDir();
    const backend = new FileBackend({ cacheDir: dir, maxEntryCount: 20 });
    const keys = Array.from({ length: 18 }, (_, i) => `count:${i}`);
    for (const key of keys) await backend.set(key, bytes(key));
    await age(dir, keys);
    for (const key of keys.slice(0, 5)) expect(text(await backend.get(key))).toBe(key); // read: now most recent
    expect(await entryNames(dir)).toHaveLength(18); // 18 is not past 90% of 20
    await backend.set('count:18', bytes('count:18')); // 19 > 18: evict down to 14
    const left = new Set(await entryNames(dir));
    expect(left.size).toBe(14);
    const evicted = [...keys, 'count:18'].filter((key) => !left.has(sha256(key)));
    expect(evicted).toEqual(['count:5', 'count:6', 'count:7', 'count:8', 'count:9']);
    expect((await backend.healthCheck())[1]).toMatchObject({ entries: 14 });
    await backend.close();
  });

  it('evicts by size past 90%, least recently read first, down to 70%', async () => {
    const dir = freshDir();
    const backend = new FileBackend({ cacheDir: dir, maxSizeMb: 1 });
    const value = new Uint8Array(100 * 1024); // 9 entries: 88% of 1 MiB; 10: 98%
    const keys = Array.from({ length: 9 }, (_, i) => `size:${i}`);
    for (const key of keys) await backend.set(key, value);
    await age(dir, keys);
    for (const key of ['size:0', 'size:1', 'size:2']) expect(await backend.get(key)).not.toBeNull();
    expect(await entryNames(dir)).toHaveLength(9);
    await backend.set('size:9', value);
    const left = new Set(await entryNames(dir));
    const evicted = [...keys, 'size:9'].filter((key) => !left.has(sha256(key)));
    expect(evicted).toEqual(['size:3', 'size:4', 'size:5']);
    let total = 0;
    for (const name of left) total += (await stat(path.join(dir, name))).size;
    expect(total).toBeLessThanOrEqual(0.7 * MIB);
    await backend.close();
  });

  it('counts what is already on disk (lazy scan) and honours another process holding the eviction lease', async () => {
    const dir = freshDir();
    const first = new FileBackend({ cacheDir: dir, maxEntryCount: 20 });
    for (let i = 0; i < 18; i++) await first.set(`pre:${i}`, bytes('v'));
    await first.close();

    // A live lease held by "another process": this one must not scan or evict.
    const lease = path.join(dir, '.evict.lock');
    await writeFile(lease, JSON.stringify({ token: 'other', expiresAtMs: Date.now() + 60_000, pid: 1 }));
    const second = new FileBackend({ cacheDir: dir, maxEntryCount: 20 });
    await second.set('pre:18', bytes('v'));
    expect(await entryNames(dir)).toHaveLength(19);
    expect(await readFile(lease, 'utf8')).toContain('"other"');

    // The holder crashed: its lease expires and is taken over; the next write evicts to 70%.
    await writeFile(lease, JSON.stringify({ token: 'other', expiresAtMs: Date.now() - 1, pid: 1 }));
    await second.set('pre:19', bytes('v'));
    expect(await entryNames(dir)).toHaveLength(14);
    expect(await readdir(dir)).not.toContain('.evict.lock');
    await second.close();
  });

  it('removes temp files orphaned by a crashed writer, but not recent ones', async () => {
    const dir = freshDir();
    const backend = new FileBackend({ cacheDir: dir });
    await backend.exists('warm');
    const orphan = path.join(dir, `${sha256('x')}.999.abcdef.tmp`);
    const recent = path.join(dir, `${sha256('y')}.999.abcdef.tmp`);
    await writeFile(orphan, 'partial');
    await writeFile(recent, 'in progress');
    const hourAgo = Date.now() / 1000 - 3600;
    await utimes(orphan, hourAgo, hourAgo);
    await backend.set('k', bytes('v')); // first write: the lazy scan
    const names = await readdir(dir);
    expect(names).not.toContain(path.basename(orphan));
    expect(names).toContain(path.basename(recent));
    await backend.close();
  });
});

describe('FileBackend: leases', () => {
  it('takes over an expired lease, keeps a live one, and refuses a wrong token', async () => {
    const dir = freshDir();
    const backend = new FileBackend({ cacheDir: dir });
    const other = new FileBackend({ cacheDir: dir });
    const token = await backend.acquireLock('job', 60_000);
    expect(token).not.toBeNull();
    expect(await other.acquireLock('job', 60_000)).toBeNull();
    expect(await other.releaseLock('job', 'wrong')).toBe(false);
    expect(await other.acquireLock('job', 60_000)).toBeNull(); // the wrong token did not release it

    // Expire it in place (a holder that crashed long ago) and take it over.
    const file = `${entryPath(dir, 'job')}.lock`;
    const lease = JSON.parse(await readFile(file, 'utf8')) as { token: string };
    await writeFile(file, JSON.stringify({ ...lease, expiresAtMs: Date.now() - 1 }));
    const taken = await other.acquireLock('job', 60_000);
    expect(taken).not.toBeNull();
    expect(await backend.releaseLock('job', token!)).toBe(false); // the old holder no longer has it
    expect(await other.releaseLock('job', taken!)).toBe(true);

    for (const junk of ['garbage, e.g. emptied by a crash', 'null', '42']) {
      await writeFile(file, junk);
      const fresh = await backend.acquireLock('job', 1_000);
      expect(fresh, junk).not.toBeNull();
      expect(await backend.releaseLock('job', fresh!)).toBe(true);
    }
    await expect(backend.acquireLock('job', 0)).rejects.toMatchObject({ kind: 'permanent' });
    await backend.close();
    await other.close();
  });
});

describe('FileBackend: options', () => {
  it('uses the documented defaults', () => {
    const backend = new FileBackend();
    expect(backend.cacheDir).toBe(path.join(os.tmpdir(), 'cachekit'));
    expect([backend.maxSizeMb, backend.maxValueMb, backend.maxEntryCount]).toEqual([1024, 100, 10_000]);
    expect(new FileBackend({ maxSizeMb: 10 }).maxValueMb).toBe(10); // the value default never exceeds the total
    expect(new FileBackend({ cacheDir: 'relative/dir' }).cacheDir).toBe(path.resolve('relative/dir'));
  });

  it('throws ConfigError naming the option', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ cacheDir: '' }, 'cacheDir'],
      [{ cacheDir: '   ' }, 'cacheDir'],
      [{ cacheDir: 42 }, 'cacheDir'],
      [{ cacheDir: 'a\u0000b' }, 'cacheDir'],
      [{ maxSizeMb: 0 }, 'maxSizeMb'],
      [{ maxSizeMb: -1 }, 'maxSizeMb'],
      [{ maxSizeMb: Number.NaN }, 'maxSizeMb'],
      [{ maxSizeMb: '100' }, 'maxSizeMb'],
      [{ maxValueMb: 0 }, 'maxValueMb'],
      [{ maxSizeMb: 10, maxValueMb: 11 }, 'maxValueMb'],
      [{ maxEntryCount: 0 }, 'maxEntryCount'],
      [{ maxEntryCount: 1.5 }, 'maxEntryCount'],
      [{ cachedir: '/tmp/x' }, 'cachedir'],
    ];
    for (const [options, option] of cases) {
      const error = configError(() => new FileBackend(options as never));
      expect(error.option, JSON.stringify(options)).toBe(option);
      expect(error.message).toContain(option);
    }
  });

  it('fromEnv reads the CACHEKIT_FILE_* variables; explicit options win; bad values name the variable', () => {
    const env = {
      CACHEKIT_FILE_CACHE_DIR: '/var/cache/from-env',
      CACHEKIT_FILE_MAX_SIZE_MB: '50',
      CACHEKIT_FILE_MAX_VALUE_MB: '5',
      CACHEKIT_FILE_MAX_ENTRY_COUNT: '500',
    };
    const backend = FileBackend.fromEnv(env);
    expect([backend.cacheDir, backend.maxSizeMb, backend.maxValueMb, backend.maxEntryCount]).toEqual(['/var/cache/from-env', 50, 5, 500]);
    expect(FileBackend.fromEnv(env, { cacheDir: '/elsewhere', maxEntryCount: 7 })).toMatchObject({ cacheDir: '/elsewhere', maxEntryCount: 7 });
    expect(FileBackend.fromEnv({}).cacheDir).toBe(path.join(os.tmpdir(), 'cachekit'));
    expect(configError(() => FileBackend.fromEnv({ CACHEKIT_FILE_MAX_SIZE_MB: 'big' })).option).toBe('CACHEKIT_FILE_MAX_SIZE_MB');
    expect(configError(() => FileBackend.fromEnv({ CACHEKIT_FILE_MAX_ENTRY_COUNT: '-3' })).option).toBe('CACHEKIT_FILE_MAX_ENTRY_COUNT');
    expect(configError(() => FileBackend.fromEnv({ CACHEKIT_FILE_MAX_VALUE_MB: '0' })).option).toBe('CACHEKIT_FILE_MAX_VALUE_MB');
    expect(configError(() => FileBackend.fromEnv({ CACHEKIT_FILE_MAX_SIZE_MB: '1', CACHEKIT_FILE_MAX_VALUE_MB: '2' })).option).toBe('maxValueMb');
  });

  it('rejects invalid TTLs with a permanent error', async () => {
    const backend = new FileBackend({ cacheDir: freshDir() });
    for (const ttl of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect((await rejection(backend.set('k', bytes('v'), ttl))).kind).toBe('permanent');
    }
    await backend.close();
  });
});
