/**
 * Where LZ4 starts to pay inside the cachekit envelope: encode+decode time and envelope size, literal-only block
 * (threshold above the size) versus a real LZ4 compression (threshold 0), on JSON-like and MessagePack-like values.
 *
 *   npx esbuild bench/envelope.ts --bundle --platform=node --format=esm --packages=external \
 *     --outfile=.cache/bench/envelope.mjs && node .cache/bench/envelope.mjs
 */
import { pack } from 'msgpackr';
import { createEnvelopeFormat } from '../src/wire/envelope.js';

function jsonLike(size: number): Uint8Array {
  const rows: string[] = [];
  for (let i = 0; rows.join('').length < size; i++) {
    rows.push(JSON.stringify({ id: i, slug: `post-${i * 7919}`, title: `Title ${i}`, views: (i * 37) % 1001, draft: i % 3 === 0 }));
  }
  return Buffer.from(rows.join('').slice(0, size));
}

function msgpackLike(size: number): Uint8Array {
  const items: unknown[] = [];
  let out = pack(items);
  for (let i = 0; out.length < size; i++) {
    items.push({ id: i, n: `u${(i * 2654435761) % 100000}`, s: (i * 37) % 1001 });
    out = pack(items);
  }
  return out.subarray(0, size);
}

function timeNs(fn: () => void): number {
  const iterations = 20_000;
  for (let i = 0; i < 2000; i++) fn();
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn();
  return Number(process.hrtime.bigint() - start) / iterations;
}

const literal = await createEnvelopeFormat({ compressThresholdBytes: Number.MAX_SAFE_INTEGER });
const lz4 = await createEnvelopeFormat({ compressThresholdBytes: 0 });
console.log('kind      size  literal:bytes  ns(enc+dec)  lz4:bytes  ns(enc+dec)');
for (const [kind, make] of [
  ['json', jsonLike],
  ['msgpack', msgpackLike],
] as const) {
  for (const size of [32, 64, 128, 192, 256, 384, 512, 1024, 4096]) {
    const input = make(size);
    const rows = [literal, lz4].map((codec) => {
      const env = codec.encode(input);
      return [env.length, timeNs(() => codec.decode(codec.encode(input)))];
    });
    console.log(
      `${kind.padEnd(8)} ${String(size).padStart(5)} ${String(rows[0]![0]).padStart(14)} ${rows[0]![1]!.toFixed(0).padStart(12)} ${String(rows[1]![0]).padStart(10)} ${rows[1]![1]!.toFixed(0).padStart(12)}`,
    );
  }
}
