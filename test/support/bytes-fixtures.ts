/** Inputs shared by the byte-layer unit tests and the fuzz tests. */
import fc from 'fast-check';
import { Float64 } from '../../src/wire/interop.js';

/** The legacy twin of a bin envelope: the compressed data as an array of uint8, as rmp_serde wrote it before 1.1. */
export function toLegacyEnvelope(envelope: Uint8Array): Uint8Array {
  const b = Buffer.from(envelope);
  const width = b[1] === 0xc4 ? 1 : b[1] === 0xc5 ? 2 : 4;
  const n = b.readUIntBE(2, width);
  const data = b.subarray(2 + width, 2 + width + n);
  const header = n < 16 ? [0x90 | n] : n <= 0xffff ? [0xdc, n >>> 8, n & 0xff] : [0xdd, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
  const items = [...data].flatMap((x) => (x <= 0x7f ? [x] : [0xcc, x]));
  return Buffer.concat([Buffer.of(0x94, ...header, ...items), b.subarray(2 + width + n)]);
}

/** Any value interop mode can carry, nested up to `maxItems` per array or map. */
export function interopValues(maxItems: number): fc.Arbitrary<unknown> {
  return fc.letrec<{ v: unknown }>((tie) => ({
    v: fc.oneof(
      { depthSize: 'small' },
      fc.constant(null),
      fc.boolean(),
      fc.integer(),
      fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
      fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => new Float64(d)),
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.uint8Array({ maxLength: 40 }),
      fc.array(tie('v'), { maxLength: maxItems }),
      fc.dictionary(fc.string({ unit: 'binary', maxLength: 8 }), tie('v'), { maxKeys: maxItems }),
    ),
  })).v;
}
