/**
 * Fuzz support: random byte strings and mutations of valid encodings (bit flips, byte overwrites, truncations,
 * extensions, insertions, duplicated slices), and the one outcome a decoder may have on them: a value, a clean miss
 * (null), or a thrown Error instance; never another throw, a crash or a hang.
 */
import fc from 'fast-check';
import { expect } from 'vitest';

type Mutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; value: number }
  | { op: 'truncate'; at: number }
  | { op: 'extend'; bytes: Uint8Array }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'duplicate'; at: number; length: number };

const position = fc.nat({ max: 1 << 20 });
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: position, bit: fc.nat({ max: 7 }) }),
  fc.record({
    op: fc.constant('set' as const),
    at: position,
    value: fc.oneof(fc.constantFrom(0, 0xff, 0x7f, 0x80, 0xc1, 0xdd, 0xdf, 0xc6, 0xcf), fc.nat({ max: 255 })),
  }),
  fc.record({ op: fc.constant('truncate' as const), at: position }),
  fc.record({ op: fc.constant('extend' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ op: fc.constant('insert' as const), at: position, bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ op: fc.constant('duplicate' as const), at: position, length: fc.integer({ min: 1, max: 64 }) }),
);

export function applyMutations(input: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let bytes = Buffer.from(input);
  for (const m of mutations) {
    const at = bytes.length === 0 ? 0 : m.op === 'extend' ? 0 : ('at' in m ? m.at : 0) % (bytes.length + (m.op === 'insert' || m.op === 'truncate' ? 1 : 0));
    switch (m.op) {
      case 'flip':
        if (bytes.length) bytes[at] = bytes[at]! ^ (1 << m.bit);
        break;
      case 'set':
        if (bytes.length) bytes[at] = m.value;
        break;
      case 'truncate':
        bytes = bytes.subarray(0, at);
        break;
      case 'extend':
        bytes = Buffer.concat([bytes, m.bytes]);
        break;
      case 'insert':
        bytes = Buffer.concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at)]);
        break;
      case 'duplicate':
        bytes = Buffer.concat([bytes.subarray(0, at + m.length), bytes.subarray(at, at + m.length), bytes.subarray(at + m.length)]);
        break;
    }
  }
  return bytes;
}

/** Valid encodings of `valid` values, then 1 to 4 mutations. */
export function mutated<T>(valid: fc.Arbitrary<T>, encode: (value: T) => Uint8Array): fc.Arbitrary<Uint8Array> {
  return fc.tuple(valid, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([value, ms]) => applyMutations(encode(value), ms));
}

/** Random bytes, weighted towards short inputs (where framing bugs live) with some long ones. */
export const randomBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 4096 }) },
);

/** Random bytes behind a fixed prefix (so the decoder gets past its magic or first byte). */
export function prefixed(prefix: Uint8Array): fc.Arbitrary<Uint8Array> {
  return fc.uint8Array({ maxLength: 512 }).map((tail) => Buffer.concat([prefix, tail]));
}

export interface FuzzStats {
  runs: number;
  values: number;
  misses: number;
  errors: number;
  slowestMs: number;
  slowestInput?: Uint8Array;
}

export function newStats(): FuzzStats {
  return { runs: 0, values: 0, misses: 0, errors: 0, slowestMs: 0 };
}

/** Runs `decode` on `input`, checking the outcome is a value, a miss or an Error, within a per-call time bound. */
export function cleanOutcome(stats: FuzzStats, decode: (input: Uint8Array) => unknown, input: Uint8Array): void {
  stats.runs++;
  const start = performance.now();
  let outcome: unknown;
  try {
    outcome = decode(input);
  } catch (error) {
    if (!(error instanceof Error)) {
      throw new Error(`decoder threw a non-Error ${String(error)} on ${Buffer.from(input).toString('hex').slice(0, 200)}`);
    }
    stats.errors++;
    outcome = undefined;
  }
  if (outcome === null) stats.misses++;
  else if (outcome !== undefined) stats.values++;
  const ms = performance.now() - start;
  if (ms > stats.slowestMs) {
    stats.slowestMs = ms;
    stats.slowestInput = input;
  }
  // An upper bound, not a benchmark: a hang or a runaway loop shows up as seconds, a decode takes microseconds.
  expect(ms, `decode of ${input.length} bytes`).toBeLessThan(2000);
}

export function report(name: string, stats: FuzzStats, started: number): void {
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  console.log(
    `[fuzz] ${name}: ${stats.runs} inputs (${stats.values} values, ${stats.misses} misses, ${stats.errors} errors) in ${seconds}s, slowest ${stats.slowestMs.toFixed(1)}ms (${stats.slowestInput?.length ?? 0} bytes: ${Buffer.from(
      stats.slowestInput ?? [],
    )
      .toString('hex')
      .slice(0, 48)})`,
  );
}
