/**
 * The cross-instance staleness window, and what read-your-own-writes costs. Instance A (this process) writes or
 * revalidates; instance B (a child process with its own CacheStack, backend and connections, as a second server would
 * be) polls `get` tightly, each poll a new handler as Next constructs one per request; we measure the time from A's
 * `set` / `revalidateTag` resolving until B's `get` reflects it. Times come from `process.hrtime.bigint()`
 * (CLOCK_MONOTONIC, one clock for every process of the machine).
 *
 * - Redis: invalidation messages over pub/sub; the window is one message plus one L2 read.
 * - Memcached, File (no messages), default options: the invalidation epoch, read once per request; the window is
 *   one epoch read (the first request that starts after the change sees it).
 * - Memcached, File with `readYourWrites: false`: B's L1 and tag states live `coherenceTtlSeconds` (1 s), which bounds
 *   the window. To keep the run short, those trials run 20 at a time on independent keys, each change at a random
 *   offset in [0, 1.1 s) so that it falls anywhere in B's L1 lifetime.
 *
 * Then the cost, in this process: an L1 hit per request (a new handler and one `get`) with and without the epoch
 * read, one request at a time and 32 at once (they share one read), and a `set` (the epoch adds incr + one journal
 * write).
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
import { MemcachedBackend } from '../src/backends/memcached.js';
import { RedisBackend } from '../src/backends/redis.js';
import { isClosable, type Backend } from '../src/protocol/backend.js';
import { startMemcached, startRedis } from '../test/support/servers.js';
import { measureCost } from './epoch-cost.js';
import { createOurs, type Ours } from './ours.js';
import { formatNumber, loadAverage, loadLine, machineLine, markdownTable, prng, quantile, runOrExit } from './support.js';

const TRIALS = 200;
const POLL_TIMEOUT_MS = 5_000;

export type BackendConfig = { kind: 'redis'; url: string; keyPrefix: string } | { kind: 'file'; dir: string } | { kind: 'memcached'; servers: string[] };
/** What instance B runs: its backend and whether it reads the invalidation epoch. */
type Setup = { backend: BackendConfig; readYourWrites: boolean };
type Mode = 'set' | 'revalidateTag';

/** Parent -> worker. */
type Command = { type: 'prime'; keys: string[]; version: number } | { type: 'watch'; keys: string[]; until: { version: number } | 'miss' };
/** Worker -> parent. */
type Reply = { type: 'ready' } | { type: 'primed' } | { type: 'watching' } | { type: 'seen'; times: (string | null)[] };

const GET_CTX = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false };

export function makeBackend(config: BackendConfig): Backend {
  if (config.kind === 'redis') return new RedisBackend({ url: config.url, keyPrefix: config.keyPrefix });
  if (config.kind === 'memcached') return new MemcachedBackend({ servers: config.servers });
  return new FileBackend({ cacheDir: config.dir });
}

const tagOf = (key: string) => `tag:${key}`;
export const page = (key: string, version: number) => ({
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

async function worker(setup: Setup): Promise<void> {
  const ours = await createOurs(makeBackend(setup.backend), { readYourWrites: setup.readYourWrites });
  const send = (reply: Reply) => process.send!(reply);
  // Every poll is a request: Next constructs the handler anew for each.
  const read = async (key: string) => (await ours.request().get(key, { ...GET_CTX }))?.value ?? null;

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
    void ours.stack.close().finally(() => process.exit(0));
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

  constructor(setup: Setup) {
    this.#child = fork(fileURLToPath(import.meta.url), ['--worker', JSON.stringify(setup)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
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
    for (const [i, time] of reply.times.entries()) windows.push(time === null ? Infinity : Number(BigInt(time) - done[i]!) / 1e6);
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

  /** A and B over `config`: B in its own process; rows for `set` and `revalidateTag`. */
  const pairOn = async (label: string, config: BackendConfig, readYourWrites: boolean, batch: number, maxOffsetMs: number) => {
    const backend = makeBackend(config);
    const a = await createOurs(backend, { readYourWrites });
    const b = new Worker({ backend: config, readYourWrites });
    await b.next();
    const slug = label.replace(/\W+/g, '-').toLowerCase();
    record(`${label}: \`set\``, await runScenario(a, b, 'set', slug, batch, maxOffsetMs));
    record(`${label}: \`revalidateTag\``, await runScenario(a, b, 'revalidateTag', slug, batch, maxOffsetMs));
    console.error(`[staleness] ${label} done (load ${loadAverage().toFixed(2)})`);
    await b.stop();
    await a.stack.close();
    if (isClosable(backend)) await backend.close();
  };

  // Redis: B is a separate process with its own connections and subscriber.
  const redis = await startRedis();
  await pairOn('Redis (pub/sub invalidation)', { kind: 'redis', url: redis.url, keyPrefix: 'ck:' }, true, 1, 0);
  await redis.stop();

  const memcached = await Promise.all([startMemcached(), startMemcached()]);
  const memcachedConfig: BackendConfig = { kind: 'memcached', servers: memcached.map((m) => m.address) };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ck-bench-stale-'));
  const fileConfig: BackendConfig = { kind: 'file', dir };
  let cost = '';
  try {
    await pairOn('Memcached, invalidation epoch (default)', memcachedConfig, true, 1, 0);
    await pairOn('File, invalidation epoch (default)', fileConfig, true, 1, 0);
    await pairOn('Memcached, `readYourWrites: false` (`coherenceTtlSeconds: 1`)', memcachedConfig, false, 20, 1_100);
    await pairOn('File, `readYourWrites: false` (`coherenceTtlSeconds: 1`)', fileConfig, false, 20, 1_100);
    cost = await measureCost([
      ['Memcached (2 servers)', () => makeBackend(memcachedConfig)],
      ['File', () => makeBackend(fileConfig)],
    ]);
    loads.push(loadAverage());
  } finally {
    await Promise.all(memcached.map((m) => m.stop()));
    rmSync(dir, { recursive: true, force: true });
  }

  console.log("\n### Cross-instance staleness: from A's call resolving until B's `get` reflects it (B polls tightly in another process)\n");
  console.log(`${machineLine()}; ${loadLine(loads)}\n`);
  console.log(markdownTable(['backend: operation', 'trials', 'p50', 'p99', 'max', 'min', 'never seen'], rows));
  console.log(cost);
  process.exit(0);
}

runOrExit(() => (process.argv[2] === '--worker' ? worker(JSON.parse(process.argv[3]!) as Setup) : main()));
