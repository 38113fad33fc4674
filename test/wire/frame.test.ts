import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { frame, packValue, tableCrc32, unframe, unpackValue } from '../../src/wire/frame.js';

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

describe('the entry frame', () => {
  const payload = (n: number) => packValue({ html: '<p>cachekit</p>'.repeat(n), n });

  it('carries a CRC-32 of the stored body: any corrupted byte is refused, never decoded into another value', () => {
    for (const [size, compression] of [
      [2, {}],
      [2_000, {}],
      [2_000, { algorithm: 'deflate' as const }],
      [2_000, { thresholdBytes: false as const }],
    ] as const) {
      const framed = frame(payload(size), compression);
      expect(framed[2]! & 0x04, 'checksum flag').toBe(0x04);
      expect(unpackValue(unframe(framed))).toEqual({ html: '<p>cachekit</p>'.repeat(size), n: size });
      for (const at of [3, 6, 7, Math.floor(framed.length / 2), framed.length - 1]) {
        const corrupt = Buffer.from(framed);
        corrupt[at] = corrupt[at]! ^ 0x20;
        expect(() => unframe(corrupt), `byte ${at} of ${framed.length}`).toThrow(/checksum mismatch/);
      }
      expect(() => unframe(framed.subarray(0, 5))).toThrow(/truncated/);
    }
  });

  it('still reads frames written before the checksum existed', () => {
    const body = payload(3);
    const old = Buffer.concat([Buffer.from([0xc4, 0x4b, 0x00]), body]);
    expect(unframe(old)).toEqual(body);
  });

  it("the table CRC-32 (Node < 20.15) computes zlib's values", () => {
    for (const data of [Buffer.alloc(0), Buffer.from('123456789'), randomBytes(1), randomBytes(4096)]) {
      expect(tableCrc32(data)).toBe(crc32(data) >>> 0);
    }
    expect(tableCrc32(Buffer.from('123456789'))).toBe(0xcbf43926);
  });
});
