/**
 * The envelope and entry frames where lz4-napi has no binary for the platform (or was not shipped): they still
 * compress, with the WebAssembly build of the same LZ4, in the same format, and read every vector with the TypeScript
 * decoder. Own file: the native module must not be loaded yet.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frame, unframe } from '../../src/wire/frame.js';
import { createEnvelopeFormat, lz4DecodeBlock, nativeLz4Available } from '../../src/wire/envelope.js';
import { setLogger } from '../../src/shared/log.js';
import { hex, loadVectors, toHex } from './vectors.js';

const warnings: string[] = [];
beforeAll(() => {
  // lz4-napi then loads only from this path (and its WASI fallback, not installed): the load fails.
  process.env.NAPI_RS_NATIVE_LIBRARY_PATH = '/nonexistent/lz4-napi.node';
  setLogger({ info: () => {}, warn: (m) => warnings.push(m) });
});
afterAll(() => {
  delete process.env.NAPI_RS_NATIVE_LIBRARY_PATH;
  setLogger(null);
});

describe('envelope without the native LZ4 binding', () => {
  it('compresses with the WebAssembly LZ4, reads every vector, and says why once', async () => {
    const codec = await createEnvelopeFormat({ nativeDecodeMinBytes: 0 });
    expect(nativeLz4Available()).toBe(false);
    const input = Buffer.alloc(10_000, 'abc');
    const envelope = codec.encode(input);
    expect(warnings.join('\n')).toMatch(/native LZ4 \(lz4-napi\) unavailable, compressing with its WebAssembly build/);
    expect(envelope.length).toBeLessThan(input.length / 10);
    expect(Buffer.from(codec.decode(envelope).data).equals(input)).toBe(true);
    for (const v of loadVectors('wire-format.json').vectors) {
      expect(toHex(codec.decode(hex(v.envelope_hex)).data)).toBe(v.input_hex);
      // The bin-form vectors (small or incompressible inputs) come out byte-identical, as from the native writer.
      if (v.envelope_encoding === 'bin') expect(toHex(codec.encode(hex(v.input_hex)))).toBe(v.envelope_hex);
    }
    expect(warnings).toHaveLength(1);
  });

  it('frames entries with LZ4 (the flag every instance reads), not deflate', () => {
    const payload = Buffer.from('<li>Product number 1: 101 (sku-abc-1)</li>'.repeat(500));
    const framed = frame(payload);
    expect(framed[2]! & 0x03).toBe(0x02); // LZ4, not deflate
    expect(framed.length).toBeLessThan(payload.length / 5);
    expect(Buffer.from(unframe(framed)).equals(payload)).toBe(true);
    // A plain LZ4 block after the size: what the native decoder and the TypeScript one read.
    expect(Buffer.from(lz4DecodeBlock(framed.subarray(11), payload.length)).equals(payload)).toBe(true);
  });
});
