/**
 * The envelope where lz4-napi has no binary for the platform: it must still write valid envelopes (literal-only LZ4
 * blocks) and read every vector with the TypeScript decoder. Own file: the native module must not be loaded yet.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEnvelopeCodec, nativeLz4Available } from '../../src/core/envelope.js';
import { setLogger } from '../../src/core/log.js';
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
  it('writes literal-only blocks, reads every vector, and says why once', async () => {
    const codec = await createEnvelopeCodec({ nativeDecodeMinBytes: 0 });
    expect(nativeLz4Available()).toBe(false);
    expect(warnings.join('\n')).toMatch(/native LZ4 \(lz4-napi\) unavailable/);
    const input = Buffer.alloc(10_000, 'abc');
    const envelope = codec.encode(input);
    expect(envelope.length).toBeGreaterThan(input.length);
    expect(Buffer.from(codec.decode(envelope).data).equals(input)).toBe(true);
    for (const v of loadVectors('wire-format.json').vectors) {
      expect(toHex(codec.decode(hex(v.envelope_hex)).data)).toBe(v.input_hex);
    }
    expect(warnings).toHaveLength(1);
  });
});
