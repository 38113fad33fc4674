/**
 * Shared pieces of the benchmarks: realistic pages, a fixed-time ops/s loop, percentiles, markdown tables and the
 * machine's load. Benchmarks are bundled with esbuild by `bench/run.mjs` (Node 20 cannot import TypeScript).
 */
import os from 'node:os';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Packr } from 'msgpackr';

/** A small deterministic PRNG (mulberry32), so every run and every contender sees the same bytes. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Mostly English, with the accented and non-Latin words a real international site has (~3% of words).
const WORDS = (
  'the of and to in is you that it he was for on are as with his they at be this have from or one had by word but ' +
  'not what all were we when your can said there use an each which she do how their if will up other about out many ' +
  'then them these so some her would make like him into time has look two more write go see number no way could ' +
  'people my than first water been call who oil its now find long down day did get come made may part over new sound ' +
  'take only little work know place year live me back give most very after thing our just name good sentence man ' +
  'think say great where help through much before line right too mean old any same tell boy follow came want show ' +
  'also around form three small set put end does another well large must big even such because turn here why ask ' +
  'went men read need land different home us move try kind hand picture again change off play spell air away animal'
).split(' ');
const INTERNATIONAL = [
  'café',
  'naïve',
  'Zürich',
  'résumé',
  'smörgåsbord',
  'São Paulo',
  'Kraków',
  'façade',
  '東京',
  '日本語',
  'Ελληνικά',
  'Москва',
  '€12,50',
  '—',
  '…',
  '✓',
];

function sentence(rand: () => number, words: number): string {
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    out.push(rand() < 0.03 ? INTERNATIONAL[Math.floor(rand() * INTERNATIONAL.length)]! : WORDS[Math.floor(rand() * WORDS.length)]!);
  }
  const text = out.join(' ');
  return `${text.charAt(0).toUpperCase() + text.slice(1)}.`;
}

export interface Page {
  html: string;
  rscData: Buffer;
  /** UTF-8 bytes of `html` plus bytes of `rscData`: the "raw" size stored sizes are compared with. */
  rawBytes: number;
}

/**
 * A page of about `totalBytes`: two thirds HTML (UTF-8), one third RSC payload, both built from the same text, as
 * Next's HTML embeds the RSC payload of the page. Deterministic for a given size and seed.
 */
export function makePage(totalBytes: number, seed = 42): Page {
  const rand = prng(seed ^ totalBytes);
  const htmlTarget = Math.round((totalBytes * 2) / 3);
  const rscTarget = totalBytes - htmlTarget;
  const head =
    '<!DOCTYPE html><html lang="en"><head><meta charSet="utf-8"/><meta name="viewport" content="width=device-width, initial-scale=1"/>' +
    '<link rel="stylesheet" href="/_next/static/css/4f1b2e9c8a7d6e5f.css" data-precedence="next"/><title>Bench page — café</title></head>' +
    '<body class="__className_a1b2c3"><div hidden=""><!--$--><!--/$--></div><main class="container mx-auto">';
  const tail = '</main><script src="/_next/static/chunks/webpack-5f4e3d2c1b0a.js" async=""></script></body></html>';
  const parts: string[] = [head];
  let bytes = Buffer.byteLength(head) + Buffer.byteLength(tail);
  let n = 0;
  while (bytes < htmlTarget) {
    const block =
      `<article class="post-card rounded-lg border p-4" data-id="${n}"><h2 class="text-xl font-semibold"><a href="/blog/post-${n}">${sentence(rand, 6)}</a></h2>` +
      `<p class="text-gray-600">${sentence(rand, 24 + Math.floor(rand() * 24))}</p><span class="date">2026-0${1 + (n % 9)}-1${n % 10}</span></article>`;
    parts.push(block);
    bytes += Buffer.byteLength(block);
    n++;
  }
  parts.push(tail);
  const html = parts.join('');
  const rsc: string[] = ['0:{"P":null,"b":"build-1","p":"","c":["","blog"],"i":false}\n', '1:I[8273,["177","static/chunks/app/layout-9a8b7c.js"],"default"]\n'];
  let rscBytes = rsc.reduce((sum, line) => sum + Buffer.byteLength(line), 0);
  let line = 2;
  while (rscBytes < rscTarget) {
    const text = `${line.toString(16)}:["$","article",null,{"className":"post-card rounded-lg border p-4","children":[["$","h2",null,{"children":${JSON.stringify(sentence(rand, 6))}}],["$","p",null,{"children":${JSON.stringify(sentence(rand, 20))}}]]}]\n`;
    rsc.push(text);
    rscBytes += Buffer.byteLength(text);
    line++;
  }
  const rscData = Buffer.from(rsc.join(''), 'utf8');
  return { html, rscData, rawBytes: Buffer.byteLength(html) + rscData.byteLength };
}

/** The tags Next puts on a blog post page (`x-next-cache-tags`): layouts, the route, the path, and one of the app's. */
export const PAGE_TAGS = '_N_T_/layout,_N_T_/blog/layout,_N_T_/blog/[slug]/layout,_N_T_/blog/[slug]/page,_N_T_/blog/a-realistic-post,posts';

/** An APP_PAGE cache value of `page`, as Next hands it to a handler's `set`. */
export function appPageValue(page: Page, tags = PAGE_TAGS) {
  return {
    kind: 'APP_PAGE',
    html: page.html,
    rscData: page.rscData,
    headers: { 'x-next-cache-tags': tags, 'content-type': 'text/html; charset=utf-8' },
    status: 200,
  };
}

/** Next's set context for an ISR page (a fresh object per call: trieb mutates it). */
/** The page sizes, timed windows and round counts of the handler-level get and set benchmarks (one shape for both). */
export const PAGE_SIZES = [
  { label: '20 KB', bytes: 20 * 1024, ms: 350 },
  { label: '200 KB', bytes: 200 * 1024, ms: 400 },
  { label: '2 MB', bytes: 2 * 1024 * 1024, ms: 700 },
];
export const PAGE_ROUNDS = 5;
export const PAGE_BREAKDOWN_ROUNDS = 3;
/** The page's key and Next's get context for an ISR page. */
export const PAGE_KEY = '/blog/a-realistic-post';
export const PAGE_GET_CONTEXT = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false };

/** Runs a benchmark's entry function: a failure prints and exits 1 (a benchmark that half-ran must not look done). */
export function runOrExit(run: () => Promise<unknown>): void {
  run().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}

export const pageSetContext = () => ({ cacheControl: { revalidate: 3600, expire: 86_400 }, isRoutePPREnabled: false, isFallback: false });

/** The floors' encoding: plain MessagePack with the options of our codec (the value as Next hands it over). */
export const floorPackr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, variableMapSize: true });

/** A product record of about 1.2 KB of MessagePack (the `cache(fn)` benchmarks' row). */
export function product(rand: () => number, id: number) {
  const words = ['steel', 'oak', 'linen', 'matte', 'waterproof', 'compact', 'café', 'Zürich', 'classic', 'travel'];
  const text = (n: number) => Array.from({ length: n }, () => words[Math.floor(rand() * words.length)]).join(' ');
  return {
    id: `sku-${id}`,
    name: text(4),
    description: text(40),
    price: Math.round(rand() * 100_000) / 100,
    stock: Math.floor(rand() * 500),
    tags: [text(1), text(1), text(1)],
    variants: Array.from({ length: 6 }, (_, i) => ({
      sku: `sku-${id}-${i}`,
      color: text(1),
      size: ['S', 'M', 'L'][i % 3],
      price: Math.round(rand() * 100_000) / 100,
    })),
    reviews: Array.from({ length: 3 }, () => ({ stars: 1 + Math.floor(rand() * 5), text: text(25) })),
  };
}

/** Runs `op` back to back (concurrency 1) for at least `minMs` and `minOps` operations; returns ops/s. */
export async function opsPerSecond(op: () => Promise<unknown>, minMs: number, minOps = 5): Promise<number> {
  let ops = 0;
  const started = performance.now();
  let elapsed = 0;
  while (elapsed < minMs || ops < minOps) {
    await op();
    ops++;
    elapsed = performance.now() - started;
  }
  return (ops * 1000) / elapsed;
}

/** Like `opsPerSecond`, also keeping each operation's latency (ms) for percentiles. */
export async function sampleOps(op: () => Promise<unknown>, minMs: number, minOps = 5): Promise<{ opsPerSecond: number; latenciesMs: number[] }> {
  const latenciesMs: number[] = [];
  const started = performance.now();
  let last = started;
  while (last - started < minMs || latenciesMs.length < minOps) {
    await op();
    const now = performance.now();
    latenciesMs.push(now - last);
    last = now;
  }
  return { opsPerSecond: (latenciesMs.length * 1000) / (last - started), latenciesMs };
}

/**
 * `rounds` rounds of every operation for `ms` each, the order rotating by one per round and garbage collected before
 * each, so that a change in the machine's load hits every contender alike. Per name: ops/s of each round, and every
 * latency of every round. `afterRound` runs after each round (e.g. to note the load).
 */
export async function interleavedRounds(
  ops: readonly { name: string; op: () => Promise<unknown> }[],
  rounds: number,
  ms: number,
  afterRound?: () => void,
): Promise<Map<string, { perRound: number[]; latenciesMs: number[] }>> {
  const out = new Map(ops.map((o) => [o.name, { perRound: [] as number[], latenciesMs: [] as number[] }]));
  for (let round = 0; round < rounds; round++) {
    const shift = round % ops.length;
    for (const o of [...ops.slice(shift), ...ops.slice(0, shift)]) {
      await settle({ gc: true });
      const sample = await sampleOps(o.op, ms, 3);
      const acc = out.get(o.name)!;
      acc.perRound.push(sample.opsPerSecond);
      for (const latency of sample.latenciesMs) acc.latenciesMs.push(latency);
    }
    afterRound?.();
  }
  return out;
}

/**
 * CPU time (user + system, this process) per call of the synchronous `op`, run for at least `minMs` of wall time and
 * `minOps` calls. On a machine shared with other work, CPU time moves far less than wall time.
 */
export function cpuMicrosPerOp(op: () => unknown, minMs: number, minOps = 5): number {
  let ops = 0;
  const started = performance.now();
  const cpu = process.cpuUsage();
  while (performance.now() - started < minMs || ops < minOps) {
    op();
    ops++;
  }
  const used = process.cpuUsage(cpu);
  return (used.user + used.system) / ops;
}

/**
 * Lets pending I/O callbacks run (e.g. pub/sub messages) between timed phases; with `gc`, also collects garbage
 * (when Node runs with --expose-gc) and then waits a little, because V8 finishes sweeping after `gc()` returns and
 * the next allocations would otherwise pay for it inside the timed section.
 */
export async function settle(options: { gc?: boolean } = {}): Promise<void> {
  for (let i = 0; i < 3; i++) await yieldToEventLoop();
  const gc = (globalThis as { gc?: () => void }).gc;
  if (options.gc && gc) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 20));
    for (let i = 0; i < 3; i++) await yieldToEventLoop();
  }
}

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

/** Nearest-rank quantile (q in 0..1) of `values`. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

/** `1234.5` -> `1,235`; small values keep 2 significant decimals. */
export function formatNumber(value: number, decimals?: number): string {
  if (!Number.isFinite(value)) return String(value);
  const digits = decimals ?? (Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2);
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(2)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} B`;
}

export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** One line describing the code and the machine, printed with every result. */
export function machineLine(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const commit = process.env.BENCH_COMMIT ? `commit ${process.env.BENCH_COMMIT}, ` : '';
  return `${commit}${os.cpus().length} x ${cpu}, Node ${process.version}`;
}

/** The 1-minute load average when the benchmark started (`loads[0]`) and while it ran (which includes itself). */
export function loadLine(loads: readonly number[]): string {
  const during = loads.slice(1);
  return `load average at start ${loads[0]!.toFixed(2)}, during the run ${Math.min(...during).toFixed(2)}-${Math.max(...during).toFixed(2)} (the benchmark and its redis-server included)`;
}

export function loadAverage(): number {
  return os.loadavg()[0]!;
}

/**
 * Silences the teardown: the results are printed, and trieb's node-redis clients (which offer no close) log and
 * reject as their server goes away. Nothing after this point can change a result.
 */
export function quietTeardown(): void {
  console.error = () => {};
  process.on('unhandledRejection', () => {});
  process.on('uncaughtException', () => {});
}
