/**
 * The byte libraries behind the envelope and interop keys, measured side by side: LZ4 block (lz4-napi native vs
 * lz4-wasm-nodejs, the fallback where the native binding does not load, vs lz4js pure JS), xxHash3-64 (hash-wasm WebAssembly vs @node-rs/xxhash native) and BLAKE2b-256 (@noble/hashes pure
 * JS vs hash-wasm). Candidates that are not installed are skipped (install them with --no-save to compare).
 *
 *   npx esbuild bench/bytes-libraries.ts --bundle --platform=node --format=esm --packages=external \
 *     --outfile=.cache/bench/bytes-libraries.mjs && node .cache/bench/bytes-libraries.mjs
 */
// biome-ignore lint/suspicious/noExplicitAny: optional libraries, each of its own shape
const load = async (name: string): Promise<any> => {
  try {
    return await import(name);
  } catch {
    return undefined;
  }
};

const lz4napi = (await load('lz4-napi'))?.default;
const lz4js = (await load('lz4js'))?.default;
const lz4wasm = (await load('lz4-wasm-nodejs'))?.default;
const hashWasm = await load('hash-wasm');
const nodeRsXxhash = await load('@node-rs/xxhash');
const noble = await load('@noble/hashes/blake2.js');

function sample(size: number): Buffer {
  const rows: string[] = [];
  for (let i = 0; rows.join('').length < size; i++) {
    rows.push(JSON.stringify({ id: i, name: `user${i}`, email: `u${i}@example.com`, score: (i * 37) % 101, tags: ['a', 'b', String(i % 7)] }));
  }
  return Buffer.from(rows.join('').slice(0, size));
}

function ns(fn: () => unknown, size: number): number {
  const iterations = Math.max(20, Math.floor(2e7 / (size + 500)));
  for (let i = 0; i < Math.min(iterations, 200); i++) fn();
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn();
  return Number(process.hrtime.bigint() - start) / iterations;
}

const xxh3Wasm = hashWasm ? await hashWasm.createXXHash3() : undefined;
const blakeWasm = hashWasm ? await hashWasm.createBLAKE2b(256) : undefined;
const columns: [string, (d: Buffer) => (() => unknown) | undefined][] = [
  ['lz4-napi compress', (d) => lz4napi && (() => lz4napi.compressSync(d))],
  ['lz4-wasm compress', (d) => lz4wasm && (() => lz4wasm.compress(d))],
  [
    'lz4js compress',
    (d) => {
      if (!lz4js) return undefined;
      const dst = new Uint8Array(lz4js.compressBound(d.length) + 16);
      const table = new Uint32Array(1 << 16);
      return () => lz4js.compressBlock(d, dst, 0, d.length, table.fill(0));
    },
  ],
  [
    'lz4-napi decompress',
    (d) => {
      if (!lz4napi) return undefined;
      const c = lz4napi.compressSync(d);
      return () => lz4napi.uncompressSync(c);
    },
  ],
  [
    'lz4js decompress',
    (d) => {
      if (!lz4napi || !lz4js) return undefined;
      const block = lz4napi.compressSync(d).subarray(4);
      const out = new Uint8Array(d.length);
      return () => lz4js.decompressBlock(block, out, 0, block.length, 0);
    },
  ],
  ['xxh3 hash-wasm', (d) => xxh3Wasm && (() => xxh3Wasm.init().update(d).digest('binary'))],
  ['xxh3 @node-rs', (d) => nodeRsXxhash && (() => nodeRsXxhash.xxh3.xxh64(d))],
  ['blake2b @noble', (d) => noble && (() => noble.blake2b(d, { dkLen: 32 }))],
  ['blake2b hash-wasm', (d) => blakeWasm && (() => blakeWasm.init().update(d).digest('binary'))],
];

console.log(['bytes', ...columns.map(([name]) => name)].join(' | '));
for (const size of [64, 256, 1024, 16_384, 262_144, 1_048_576]) {
  const d = sample(size);
  const cells = columns.map(([, make]) => {
    const fn = make(d);
    return fn ? `${(ns(fn, size) / 1000).toFixed(2)} µs` : 'n/a';
  });
  console.log([size, ...cells].join(' | '));
}
