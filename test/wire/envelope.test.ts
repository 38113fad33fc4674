import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { createEnvelopeFormat, EnvelopeError, lz4DecodeBlock, type EnvelopeFormat } from '../../src/wire/envelope.js';
import { toLegacyEnvelope } from '../support/bytes-fixtures.js';
import { hex, loadVectors, toHex } from './vectors.js';

const wire = loadVectors('wire-format.json');
let codec: EnvelopeFormat;
let nativeCodec: EnvelopeFormat;
beforeAll(async () => {
  codec = await createEnvelopeFormat();
  // Every read through the native LZ4 decoder and every write through the native compressor.
  nativeCodec = await createEnvelopeFormat({ compressThresholdBytes: 0, nativeDecodeMinBytes: 0 });
});

describe('wire-format.json vectors', () => {
  it('has the limits this codec enforces', () => {
    expect(wire.limits).toEqual({ max_compressed_size: 536870912, max_compression_ratio: 1000, max_uncompressed_size: 536870912 });
    expect(wire.vectors.length).toBe(12);
  });
  for (const v of wire.vectors) {
    it(`${v.name}: decodes`, () => {
      for (const c of [codec, nativeCodec]) {
        const { data, format } = c.decode(hex(v.envelope_hex));
        expect(toHex(data)).toBe(v.input_hex);
        expect(format).toBe(v.format);
      }
    });
    // The bin twins are what a protocol 1.1 writer produces: encode must reproduce them byte for byte, with and
    // without the literal-only shortcut. The legacy array-of-integers vectors are read-only proof.
    if (v.envelope_encoding === undefined) {
      it(`${v.name}: the fields this codec writes are the legacy vector's, byte for byte`, () => {
        expect(toHex(toLegacyEnvelope(codec.encode(hex(v.input_hex))))).toBe(v.envelope_hex);
      });
    }
    if (v.envelope_encoding === 'bin') {
      it(`${v.name}: encodes byte-identically`, () => {
        expect(toHex(codec.encode(hex(v.input_hex)))).toBe(v.envelope_hex);
        expect(toHex(nativeCodec.encode(hex(v.input_hex)))).toBe(v.envelope_hex);
        expect(codec.encode(hex(v.input_hex)).length).toBe(v.envelope_size);
      });
    }
  }
});

describe('envelope round trips and refusals', () => {
  it('round-trips sizes across the threshold and native decoder boundaries', () => {
    for (const size of [0, 1, 14, 15, 16, 269, 270, 255, 256, 257, 4096, 65535, 65536, 300_000]) {
      const random = randomBytes(size);
      const repetitive = Buffer.alloc(size, 'abcabcabd');
      for (const input of [random, repetitive]) {
        for (const c of [codec, nativeCodec]) {
          expect(Buffer.from(c.decode(c.encode(input)).data).equals(input)).toBe(true);
        }
      }
    }
  });
  it('compresses compressible data above the threshold', () => {
    const input = Buffer.alloc(100_000, 'cachekit ');
    expect(codec.encode(input).length).toBeLessThan(1000);
  });
  it('refuses a flipped bit anywhere (checksum, framing or LZ4 error) unless the bytes it yields are the original', () => {
    const input = Buffer.from('hello, cachekit! hello, cachekit! hello, cachekit! '.repeat(20));
    const env = codec.encode(input);
    let accepted = 0;
    const formatStart = env.length - 'msgpack'.length;
    for (let i = 0; i < env.length; i++) {
      const bad = Uint8Array.from(env);
      bad[i]! ^= 0x01;
      if (i >= formatStart) {
        // The format name is not covered by the checksum: it decodes, and says another format (the caller refuses it).
        expect(codec.decode(bad).format).not.toBe('msgpack');
        continue;
      }
      // Either refused, or (the ignored match nibble of the last LZ4 token) decoded to exactly the original.
      try {
        expect(Buffer.from(codec.decode(bad).data).equals(input), `byte ${i}`).toBe(true);
        accepted++;
      } catch (error) {
        expect(error, `byte ${i}`).toBeInstanceOf(EnvelopeError);
      }
    }
    expect(accepted).toBeLessThanOrEqual(1);
  });
  it('refuses decompression bombs before decompressing', () => {
    const block = lz4LiteralHeaderOnly();
    // original size 513 MiB
    const big = envelopeWith(block, 513 * 1024 * 1024);
    expect(() => codec.decode(big)).toThrow(/512 MiB/);
    // ratio 1001: 1 compressed byte declaring 1001 bytes
    expect(() => codec.decode(envelopeWith(Uint8Array.of(0x00), 1001))).toThrow(/ratio/);
    // a real 1000:1 block is accepted up to the checksum
    expect(() => codec.decode(envelopeWith(Uint8Array.of(0x00), 1000))).toThrow(/LZ4|checksum/);
  });
  it('decodes overlapping LZ4 matches and refuses offsets before the start', () => {
    expect(Buffer.from(lz4DecodeBlock(hex('1f410100ffffffe960414141414141'), 1024)).equals(Buffer.alloc(1024, 'A'))).toBe(true);
    expect(() => lz4DecodeBlock(hex('1f410200ff'), 100)).toThrow(EnvelopeError);
    expect(() => lz4DecodeBlock(hex('10ff'), 2)).toThrow(EnvelopeError);
  });
});

function lz4LiteralHeaderOnly(): Uint8Array {
  return new Uint8Array(600_000);
}

/** An envelope around `block` declaring `size` (checksum zero): for the limit checks only. */
function envelopeWith(block: Uint8Array, size: number): Uint8Array {
  const n = block.length;
  const head = n <= 0xff ? [0x94, 0xc4, n] : [0x94, 0xc6, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
  const sizeBytes = [0xce, (size >>> 24) & 0xff, (size >>> 16) & 0xff, (size >>> 8) & 0xff, size & 0xff];
  return Uint8Array.from([...head, ...block, 0x98, 0, 0, 0, 0, 0, 0, 0, 0, ...sizeBytes, 0xa7, ...Buffer.from('msgpack')]);
}
