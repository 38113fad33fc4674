/**
 * A child process for the FileBackend multi-process tests. Bundled with esbuild by `file-spawn.ts` (plain Node 20
 * cannot import TypeScript), then run as `node worker.mjs '<json task>'`. Prints one JSON result line on stdout.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { FileBackend } from '../../src/backends/file.js';

export type WorkerTask =
  | { mode: 'writer'; dir: string; maxSizeMb: number; id: number; keys: number; durationMs: number }
  | { mode: 'reader'; dir: string; maxSizeMb: number; id: number; keys: number; durationMs: number }
  | { mode: 'add'; dir: string; id: number; keys: number; startAt: number }
  | { mode: 'lock'; dir: string; id: number; rounds: number; counterFile: string };

export interface HammerResult {
  ops: number;
  hits: number;
  misses: number;
  /** Descriptions of reads that were not exactly one complete value written for that key. */
  bad: string[];
  errors: string[];
}

const BLOCK = 16;
const TAG = 0xc4c4e11e;

/** Deterministic length for (writer, seq): 64 KiB to ~576 KiB, a multiple of the 16-byte block. */
export function valueLength(writer: number, seq: number): number {
  return (4096 + ((writer * 7919 + seq * 104729) % 32768)) * BLOCK;
}

/** A value made of one 16-byte block (tag, key, writer, seq) repeated: any tear or mix shows up as a bad block. */
export function makeValue(key: number, writer: number, seq: number): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.writeUInt32BE(TAG, 0);
  block.writeUInt32BE(key, 4);
  block.writeUInt32BE(writer, 8);
  block.writeUInt32BE(seq, 12);
  const value = Buffer.allocUnsafe(valueLength(writer, seq));
  for (let offset = 0; offset < value.byteLength; offset += BLOCK) block.copy(value, offset);
  return value;
}

/** `null` when `value` is exactly one complete value written for `key`, else what is wrong with it. */
export function checkValue(key: number, value: Uint8Array): string | null {
  const buffer = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (buffer.byteLength < BLOCK || buffer.byteLength % BLOCK !== 0) return `length ${buffer.byteLength}`;
  if (buffer.readUInt32BE(0) !== TAG) return 'bad tag';
  if (buffer.readUInt32BE(4) !== key) return `value of key ${buffer.readUInt32BE(4)} read under key ${key}`;
  const writer = buffer.readUInt32BE(8);
  const seq = buffer.readUInt32BE(12);
  if (buffer.byteLength !== valueLength(writer, seq)) return `length ${buffer.byteLength} != ${valueLength(writer, seq)}`;
  const first = buffer.subarray(0, BLOCK);
  for (let offset = BLOCK; offset < buffer.byteLength; offset += BLOCK) {
    if (!buffer.subarray(offset, offset + BLOCK).equals(first)) return `mixed block at ${offset} (writer ${writer} seq ${seq})`;
  }
  return null;
}

const keyName = (k: number) => `mp:key:${k}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function hammer(task: Extract<WorkerTask, { mode: 'writer' | 'reader' }>): Promise<HammerResult> {
  const backend = new FileBackend({ cacheDir: task.dir, maxSizeMb: task.maxSizeMb });
  const result: HammerResult = { ops: 0, hits: 0, misses: 0, bad: [], errors: [] };
  const deadline = Date.now() + task.durationMs;
  let seq = 0;
  // A writer also covers every key at least once, so the directory would outgrow its budget without eviction.
  while (Date.now() < deadline || (task.mode === 'writer' && seq < task.keys + 8)) {
    seq += 1;
    const k = (seq * 31 + task.id * 7) % task.keys;
    try {
      if (task.mode === 'writer') {
        if (seq % 10 === 0) await backend.delete(keyName(k));
        else await backend.set(keyName(k), makeValue(k, task.id, seq), seq % 3 === 0 ? 60 : undefined);
      } else {
        const value = seq % 2 === 0 ? await backend.get(keyName(k)) : ((await backend.getWithTtl(keyName(k)))?.value ?? null);
        if (value === null) result.misses += 1;
        else {
          result.hits += 1;
          const problem = checkValue(k, value);
          if (problem !== null && result.bad.length < 20) result.bad.push(problem);
        }
      }
    } catch (error) {
      if (result.errors.length < 20) result.errors.push(String(error));
    }
    result.ops += 1;
  }
  await backend.close();
  return result;
}

async function addRace(task: Extract<WorkerTask, { mode: 'add' }>): Promise<boolean[]> {
  const backend = new FileBackend({ cacheDir: task.dir });
  await backend.exists('warm'); // directory checks done before the start line
  await sleep(Math.max(0, task.startAt - Date.now()));
  const won: boolean[] = [];
  for (let k = 0; k < task.keys; k++) won.push(await backend.add(`add:${k}`, Buffer.from(`writer-${task.id}`), 60));
  await backend.close();
  return won;
}

/** Non-atomic read-modify-write of a counter file under the lock: lost updates would prove two holders at once. */
async function lockRounds(task: Extract<WorkerTask, { mode: 'lock' }>): Promise<{ acquired: number; busy: number }> {
  const backend = new FileBackend({ cacheDir: task.dir });
  let acquired = 0;
  let busy = 0;
  while (acquired < task.rounds) {
    const token = await backend.acquireLock('counter', 10_000);
    if (token === null) {
      busy += 1;
      await sleep(Math.random() * 2);
      continue;
    }
    const count = Number(await readFile(task.counterFile, 'utf8'));
    await sleep(Math.random() * 2);
    await writeFile(task.counterFile, String(count + 1));
    if (!(await backend.releaseLock('counter', token))) throw new Error('lost the lock while holding it');
    acquired += 1;
  }
  await backend.close();
  return { acquired, busy };
}

async function main(): Promise<void> {
  const task = JSON.parse(process.argv[2] ?? '{}') as WorkerTask;
  let result: unknown;
  if (task.mode === 'writer' || task.mode === 'reader') result = await hammer(task);
  else if (task.mode === 'add') result = await addRace(task);
  else result = await lockRounds(task);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

// Only when run as the bundled worker script, not when the test imports the value helpers.
if (process.env.CACHEKIT_FILE_WORKER === '1') {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
}
