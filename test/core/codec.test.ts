import { describe, expect, it } from 'vitest';
import { packValue, unpackValue } from '../../src/core/codec.js';

describe('MessagePack reading', () => {
  it('round-trips what it packs', () => {
    const value = { a: [1, -1, 300, -70000, 2 ** 40, 1.5, null, true, false], s: 'x'.repeat(300), b: Buffer.alloc(70_000, 1), m: { k: 'v' } };
    expect(unpackValue(packValue(value))).toEqual(value);
  });

  it('refuses declared lengths and counts larger than the input, before allocating', () => {
    // array32 claiming 2^24 elements, map32 claiming 2^28 pairs, bin32 claiming 1 GiB, str16 past the end.
    for (const hex of ['dd01000000c0', 'df10000000', 'c640000000', 'da0100', '92c0']) {
      expect(() => unpackValue(Buffer.from(hex, 'hex')), hex).toThrow(/corrupt MessagePack/);
    }
    expect(() => unpackValue(Buffer.from('c1', 'hex'))).toThrow(/invalid type/);
  });
});
