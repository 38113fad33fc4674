/**
 * The cross-instance staleness window: instance A (this process) writes or revalidates, instance B (a child process
 * with its own Runtime, backend and connections, as a second server would be) polls `get` tightly, and we measure
 * the time from A's `set` / `revalidateTag` resolving until B's `get` reflects it. Times come from
 * `process.hrtime.bigint()` (CLOCK_MONOTONIC, one clock for every process of the machine).
 *
 * - Redis: invalidation messages over pub/sub; the window is one message plus one L2 read.
 * - File (two processes over one directory, no messages): B's L1 and tag states live `coherenceTtlSeconds` (1 s by
 *   default), so the window is bounded by that. To keep the run short, File trials run 20 at a time on independent
 *   keys, each write at a random offset in [0, 1.1 s) so that it falls anywhere in B's L1 lifetime.
 *
 *   node bench/run.mjs staleness
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { FileBackend } from '../src/backends/file.js';
import { RedisBackend } from '../src/backends/redis.js';
import type { Backend } from '../src/backends/types.js';
import { startRedis } from '../test/support/servers.js';
import { createOurs, type Ours } from './ours.js';
import { formatNumber, loadAverage, loadLine, machineLine, markdownTable, prng, quantile } from './support.js';

const TRIALS = 200;
const POLL_TIMEOUT_MS = 5_000;

type BackendConfig = { kind: 'redis'; url: string; keyPrefix: string } | { kind: 'file'; dir: string };
type Mode = 'set' | 'revalidateTag';

/** Parent -> worker. */
type Command =
  | { type: 'prime'; keys: string[]; version: number }
  | { type: 'watch'; keys: string[]; until: { version: number } | 'miss' };
/** Worker -> parent. */
type Reply = { type: 'ready' } | { type: 'primed' } | { type: 'watching' } | { type: 'seen'; times: (string | null)[] };

const GET_CTX = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false };

function makeBackend(config: BackendConfig): Backend {
  return config.kind === 'redis' ? new RedisBackend({ url: config.url, keyPrefix: config.keyPrefix }) : new FileBackend({ cacheDir: config.dir });
}

const tagOf = (key: string) => `tag:${key}`;
const page = (key: string, version: number) => ({
  kind: 'APP_PAGE',
  html: `<!DOCTYPE html><html><body data-version="${version}"><h1>${key} — v${version}</h1>${'<p>Lorem ipsum dolor sit amet, café.</p>'.repeat(40)}</body></html>`,
  rscData: Buffer.from(`0:["$","h1",null,{"children":"${key} v${version}"}]\n`),
  headers: { 'x-next-cache-tags': `_N_T_/layout,_N_T_${key},${tagOf(key)}` },
  status: 200,
});
const versionOf = (value: unknown): number | null => {
  const html = (value as { html?: string } | null | undefined)?.html;
  const match = html ? /data-version="(\d+)"/.exec(html) : null;
  return match ? Number(match[1]) : null;
};

// ------------------------------------------------------------------------------------------------------------------
// Instance B: the worker process
// ------------------------------------------------------------------------------------------------------------------

async function worker(config: BackendConfig): Promise<void> {
  const ours = await createOurs(makeBackend(config));
  const send = (reply: Reply) => process.send!(reply);
  const read = async (key: string) => (await ours.handler.get(key, { ...GET_CTX }))?.value ?? null;

  process.on('message', (command: Command) => {
    void (async () => {
      if (command.type === 'prime') {
        // B must hold the old state (L1 entry, tag states) before A changes it, or there is nothing to be stale.
        for (const key of command.keys) {
          const deadline = Date.now() + POLL_TIMEOUT_MS;
          while (versionOf(await read(key)) !== command.version) {
            if (Date.now() > deadline) throw new Error(`worker: ${key} never showed version ${command.version}`);
            await yieldToEventLoop();
          }
        }
        send({ type: 'primed' });
        return;
      }
      const { keys, until } = command;
      const times: (string | null)[] = keys.map(() => null);
      send({ type: 'watching' });
      const deadline = Date.now() + POLL_TIMEOUT_MS;
      let pending = keys.length;
      while (pending > 0 && Date.now() < deadline) {
        for (let i = 0; i < keys.length; i++) {
          if (times[i] !== null) continue;
          const value = await read(keys[i]!);
          const reflected = until === 'miss' ? value === null : versionOf(value) === until.version;
          if (reflected) {
            times[i] = process.hrtime.bigint().toString();
            pending--;
          }
        }
        // A real server reads between I/O events; yielding also lets invalidation messages in.
        await yieldToEventLoop();
      }
      send({ type: 'seen', times });
    })().catch((error: unknown) => {
      console.error(error);
      process.exit(1);
    });
  });
  process.on('disconnect', () => {
    void ours.runtime.close().finally(() => process.exit(0));
  });
  send({ type: 'ready' });
}

// ------------------------------------------------------------------------------------------------------------------
// Instance A: this process
// ------------------------------------------------------------------------------------------------------------------

class Worker {
  readonly #child: ChildProcess;
  readonly #waiting: ((reply: Reply) => void)[] = [];
  readonly #unclaimed: Reply[] = [];

  constructor(config: BackendConfig) {
    this.#child = fork(fileURLToPath(import.meta.url), ['--worker', JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.#child.on('message', (reply: Reply) => {
      const waiter = this.#waiting.shift();
      if (waiter) waiter(reply);
      else this.#unclaimed.push(reply);
    });
    this.#child.on('exit', (code) => {
      if (code !== 0 && code !== null) {
        console.error(`staleness worker exited with ${code}`);
        process.exit(1);
      }
    });
  }

  /** The next reply not yet claimed. */
  next(): Promise<Reply> {
    const early = this.#unclaimed.shift();
    if (early) return Promise.resolve(early);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  async request(command: Command, expected: Reply['type']): Promise<Reply> {
    const reply = this.next();
    this.#child.send(command);
    const got = await reply;
    if (got.type !== expected) throw new Error(`worker answered ${got.type}, expected ${expected}`);
    return got;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      this.#child.once('exit', () => resolve());
      this.#child.disconnect();
    });
  }
}

interface Result {
  /** Window per trial in ms; Infinity when B never reflected the change within POLL_TIMEOUT_MS. */
  windows: number[];
}

async function runScenario(a: Ours, b: Worker, mode: Mode, label: string, batch: number, maxOffsetMs: number): Promise<Result> {
  const rand = prng(mode === 'set' ? 11 : 13);
  const windows: number[] = [];
  for (let first = 0; first < TRIALS; first += batch) {
    const keys = Array.from({ length: Math.min(batch, TRIALS - first) }, (_, i) => `/${label}/${mode}/${first + i}`);
    await Promise.all(keys.map((key) => a.handler.set(key, page(key, 1), { cacheControl: { revalidate: 3600, expire: 86_400 } })));
    const writtenAt = Date.now();
    await b.request({ type: 'prime', keys, version: 1 }, 'primed');
    await b.request({ type: 'watch', keys, until: mode === 'set' ? { version: 2 } : 'miss' }, 'watching');
    const seen = b.next();
    const done = await Promise.all(
      keys.map(async (key) => {
        if (maxOffsetMs > 0) await new Promise((r) => setTimeout(r, rand() * maxOffsetMs));
        // Next's rule (ours too): a tag expiry invalidates entries written strictly before it, in whole milliseconds.
        // An entry written in the same millisecond as the revalidation survives it, so never revalidate in that one.
        while (Date.now() <= writtenAt) await new Promise((r) => setTimeout(r, 1));
        if (mode === 'set') await a.handler.set(key, page(key, 2), { cacheControl: { revalidate: 3600, expire: 86_400 } });
        else await a.handler.revalidateTag(tagOf(key));
        return process.hrtime.bigint();
      }),
    );
    const reply = await seen;
    if (reply.type !== 'seen') throw new Error(`worker answered ${reply.type}`);
    reply.times.forEach((time, i) => windows.push(time === null ? Infinity : Number(BigInt(time) - done[i]!) / 1e6));
  }
  return { windows };
}

async function main(): Promise<void> {
  const loads: number[] = [loadAverage()];
  const rows: string[][] = [];
  const record = (name: string, { windows }: Result) => {
    const missed = windows.filter((w) => !Number.isFinite(w)).length;
    const ms = (value: number) => (Number.isFinite(value) ? `${formatNumber(value, value < 10 ? 2 : 0)} ms` : `> ${POLL_TIMEOUT_MS} ms`);
    rows.push([
      name,
      String(windows.length),
      ms(quantile(windows, 0.5)),
      ms(quantile(windows, 0.99)),
      ms(Math.max(...windows)),
      ms(Math.min(...windows)),
      String(missed),
    ]);
    loads.push(loadAverage());
  };

  // Redis: B is a separate process with its own connections and subscriber.
  const redis = await startRedis();
  const redisConfig: BackendConfig = { kind: 'redis', url: redis.url, keyPrefix: 'ck:' };
  const redisBackend = makeBackend(redisConfig);
  const aRedis = await createOurs(redisBackend);
  const bRedis = new Worker(redisConfig);
  await bRedis.next();
  record('Redis (pub/sub invalidation): `set`', await runScenario(aRedis, bRedis, 'set', 'redis', 1, 0));
  record('Redis (pub/sub invalidation): `revalidateTag`', await runScenario(aRedis, bRedis, 'revalidateTag', 'redis', 1, 0));
  console.error(`[staleness] Redis done (load ${loadAverage().toFixed(2)})`);
  await bRedis.stop();
  await aRedis.runtime.close();
  await (redisBackend as RedisBackend).close();
  await redis.stop();

  // File: two processes over one directory; the bound is coherenceTtlSeconds (default 1 s).
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ck-bench-stale-'));
  try {
    const fileConfig: BackendConfig = { kind: 'file', dir };
    const aFile = await createOurs(makeBackend(fileConfig));
    const bFile = new Worker(fileConfig);
    await bFile.next();
    record('File, no messages (`coherenceTtlSeconds: 1`): `set`', await runScenario(aFile, bFile, 'set', 'file', 20, 1_100));
    record('File, no messages (`coherenceTtlSeconds: 1`): `revalidateTag`', await runScenario(aFile, bFile, 'revalidateTag', 'file', 20, 1_100));
    console.error(`[staleness] File done (load ${loadAverage().toFixed(2)})`);
    await bFile.stop();
    await aFile.runtime.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  console.log('\n### Cross-instance staleness: from A\'s call resolving until B\'s `get` reflects it (B polls tightly in another process)\n');
  console.log(`${machineLine()}; ${loadLine(loads)}\n`);
  console.log(markdownTable(['backend: operation', 'trials', 'p50', 'p99', 'max', 'min', 'never seen'], rows));
  process.exit(0);
}

if (process.argv[2] === '--worker') {
  worker(JSON.parse(process.argv[3]!) as BackendConfig).catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
} else {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
