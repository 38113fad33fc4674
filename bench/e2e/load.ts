/**
 * Load on `next start` servers: autocannon (fixed connections, fixed duration) on one or several servers at once,
 * with the servers' CPU time per request and RSS read from /proc; and the stampede (one burst of concurrent requests).
 */
import autocannon from 'autocannon';
import { prng } from '../support.js';
import { groupUsage, type Server } from './servers.js';

export interface LoadResult {
  /** Responses per second, summed over the servers. */
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  /** Non-2xx responses, errors and timeouts. */
  failures: number;
  /** Server CPU time (all processes of every server) per response, in ms. */
  cpuMsPerRequest: number;
  /** RSS of every server's processes after the run, summed. */
  rssBytes: number;
}

export interface LoadOptions {
  connections: number;
  seconds: number;
  /** The path of each request (called once per request); a fixed path when a string. */
  path: string | (() => string);
}

/** Zipf-distributed page numbers 1..n (exponent s): a few hot pages, a long tail of cold ones. Seeded, so repeatable. */
export function zipf(n: number, s: number, seed: number): () => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 1; k <= n; k++) cdf[k - 1] = sum += 1 / k ** s;
  for (let k = 0; k < n; k++) cdf[k]! /= sum;
  const rand = prng(seed);
  return () => {
    const u = rand();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo + 1;
  };
}

function cannon(url: string, options: LoadOptions): Promise<autocannon.Result> {
  const pathOf = options.path;
  return autocannon({
    url: typeof pathOf === 'string' ? url + pathOf : url,
    connections: options.connections,
    duration: options.seconds,
    ...(typeof pathOf === 'string'
      ? {}
      : {
          requests: [
            {
              setupRequest: (request) => {
                request.path = pathOf();
                return request;
              },
            },
          ],
        }),
  });
}

/** Runs `options` against every server at once (each its own autocannon), measuring their CPU and RSS around it. */
export async function load(servers: readonly Server[], options: LoadOptions): Promise<LoadResult> {
  const pgids = servers.map((server) => server.pgid);
  const before = groupUsage(pgids);
  const results = await Promise.all(servers.map((server) => cannon(server.url, options)));
  const after = groupUsage(pgids);
  const requests = results.reduce((sum, r) => sum + r.requests.total, 0);
  const seconds = Math.max(...results.map((r) => r.duration));
  // Percentiles of the server with the most responses (the servers' histograms cannot be merged from the summaries).
  const main = results.reduce((a, b) => (b.requests.total > a.requests.total ? b : a));
  return {
    reqPerSec: requests / seconds,
    p50Ms: main.latency.p50,
    p99Ms: main.latency.p99,
    requests,
    failures: results.reduce((sum, r) => sum + r.non2xx + r.errors + r.timeouts, 0),
    cpuMsPerRequest: (after.cpuMs - before.cpuMs) / Math.max(1, requests),
    rssBytes: after.rssBytes,
  };
}

export interface StampedeResult {
  requests: number;
  failures: number;
  /** The slowest response, in ms. */
  maxMs: number;
}

/** `total` requests of `path` at once, split evenly over the servers; statuses other than 200 are failures. */
export async function burst(servers: readonly Server[], path: string, total: number, timeoutMs: number): Promise<StampedeResult> {
  const timings = await Promise.all(
    Array.from({ length: total }, async (_, i) => {
      const started = performance.now();
      try {
        const res = await fetch(servers[i % servers.length]!.url + path, { signal: AbortSignal.timeout(timeoutMs) });
        await res.arrayBuffer();
        return { ok: res.status === 200, ms: performance.now() - started };
      } catch {
        return { ok: false, ms: performance.now() - started };
      }
    }),
  );
  return { requests: total, failures: timings.filter((t) => !t.ok).length, maxMs: Math.max(...timings.map((t) => t.ms)) };
}

/** GETs every path once, `concurrency` at a time (priming a store); throws on a status other than 200. */
export async function fill(server: Server, paths: readonly string[], concurrency: number): Promise<void> {
  const queue = [...paths];
  const worker = async () => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      const res = await fetch(server.url + next);
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`GET ${next}: ${res.status}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}
