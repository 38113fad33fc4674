/**
 * FileBackend across processes: several Node processes share one directory, as several `next start` processes and
 * Next's build workers do. The workers run the real module (bundled by esbuild), not a reimplementation.
 */
import { lstat, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileBackend } from '../../src/backends/file.js';
import { bundleWorker, runWorker } from '../support/file-spawn.js';
import { checkValue, makeValue, type HammerResult } from '../support/file-worker.js';

let root: string;
let script: string;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'ck-file-mp-'));
  script = await bundleWorker(root);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('FileBackend: several processes on one directory', () => {
  it('the value check itself catches torn and mixed values', () => {
    const value = makeValue(3, 1, 42);
    expect(checkValue(3, value)).toBeNull();
    expect(checkValue(4, value)).toMatch(/under key 4/);
    expect(checkValue(3, value.subarray(0, value.byteLength - 16))).toMatch(/length/);
    const mixed = Buffer.from(value);
    makeValue(3, 2, 7).copy(mixed, 0, 0, 4096); // another writer's head on this value's body
    expect(checkValue(3, mixed)).not.toBeNull();
  });

  it('readers only ever see complete values while writers overwrite the same keys and eviction runs', async () => {
    const dir = path.join(root, 'hammer');
    // 64 keys of 64-576 KiB (~20 MiB if all kept) against an 8 MiB budget: eviction passes, and the cross-process
    // eviction lease, run while writers and readers are busy.
    const keys = 64;
    const common = { dir, maxSizeMb: 8, keys, durationMs: 3_000 };
    const results = await Promise.all([
      runWorker<HammerResult>(script, { mode: 'writer', id: 1, ...common }),
      runWorker<HammerResult>(script, { mode: 'writer', id: 2, ...common }),
      runWorker<HammerResult>(script, { mode: 'writer', id: 3, ...common }),
      runWorker<HammerResult>(script, { mode: 'reader', id: 4, ...common }),
      runWorker<HammerResult>(script, { mode: 'reader', id: 5, ...common }),
    ]);
    const writers = results.slice(0, 3);
    const readers = results.slice(3);
    for (const result of results) {
      expect(result.errors).toEqual([]);
      expect(result.bad).toEqual([]);
    }
    expect(writers.reduce((sum, r) => sum + r.ops, 0)).toBeGreaterThan(30);
    const hits = readers.reduce((sum, r) => sum + r.hits, 0);
    expect(hits).toBeGreaterThan(20);

    // Eviction kept the directory near its budget: 90% plus at most ~10% per writing process between passes.
    let total = 0;
    for (const name of await readdir(dir)) if (/^[0-9a-f]{64}$/.test(name)) total += (await lstat(path.join(dir, name))).size;
    expect(total).toBeLessThanOrEqual(8 * 1024 * 1024 * 1.2);

    // Every entry left on disk is one complete value.
    const backend = new FileBackend({ cacheDir: dir, maxSizeMb: 8 });
    let live = 0;
    for (let k = 0; k < keys; k++) {
      const value = await backend.get(`mp:key:${k}`);
      if (value === null) continue;
      live += 1;
      expect(checkValue(k, value)).toBeNull();
    }
    expect(live).toBeGreaterThan(0);
    const [healthy] = await backend.healthCheck();
    expect(healthy).toBe(true);
    const names = await readdir(dir);
    expect(names.filter((n) => n.endsWith('.tmp') || n.endsWith('.aside'))).toEqual([]);
    expect(names).not.toContain('.evict.lock');
    await backend.close();
  });

  it('add() is set-if-absent across processes: exactly one process wins each key', async () => {
    const dir = path.join(root, 'add-race');
    const keys = 40;
    const startAt = Date.now() + 1_500; // all four processes start adding at the same moment
    const results = await Promise.all([1, 2, 3, 4].map((id) => runWorker<boolean[]>(script, { mode: 'add', dir, id, keys, startAt })));
    const backend = new FileBackend({ cacheDir: dir });
    for (let k = 0; k < keys; k++) {
      const winners = results.flatMap((won, i) => (won[k] ? [i + 1] : []));
      expect(winners, `key ${k}`).toHaveLength(1);
      const stored = await backend.get(`add:${k}`);
      expect(Buffer.from(stored!).toString()).toBe(`writer-${winners[0]}`);
    }
    await backend.close();
  });

  it('acquireLock() excludes other processes: no lost update on a shared counter', async () => {
    const dir = path.join(root, 'locks');
    const counterFile = path.join(root, 'counter.txt');
    await writeFile(counterFile, '0');
    const rounds = 25;
    const results = await Promise.all(
      [1, 2, 3].map((id) => runWorker<{ acquired: number; busy: number }>(script, { mode: 'lock', dir, id, rounds, counterFile })),
    );
    expect(results.map((r) => r.acquired)).toEqual([rounds, rounds, rounds]);
    // Non-atomic read-modify-write under the lock: two holders at once would lose increments.
    expect(Number(await readFile(counterFile, 'utf8'))).toBe(3 * rounds);
    // The processes did contend (otherwise this proves nothing).
    expect(results.reduce((sum, r) => sum + r.busy, 0)).toBeGreaterThan(0);
  });
});
