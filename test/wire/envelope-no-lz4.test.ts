/**
 * Where neither LZ4 module loads (no native binary, lz4-wasm-nodejs not installed): envelopes hold literal-only LZ4
 * blocks and entry frames fall back to deflate, both readable by every instance; it says so once. Own file: both
 * modules must not be loaded yet.
 */
import Module from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frame, unframe } from '../../src/wire/frame.js';
import { createEnvelopeFormat } from '../../src/wire/envelope.js';
import { setLogger } from '../../src/shared/log.js';

type Resolve = (request: string, ...rest: unknown[]) => string;
const resolver = Module as unknown as { _resolveFilename: Resolve };
const resolve = resolver._resolveFilename;

const warnings: string[] = [];
beforeAll(() => {
  process.env.NAPI_RS_NATIVE_LIBRARY_PATH = '/nonexistent/lz4-napi.node';
  // As if lz4-wasm-nodejs were not installed: Node's resolution fails for it as it would.
  resolver._resolveFilename = function (this: unknown, request, ...rest) {
    if (request === 'lz4-wasm-nodejs') throw Object.assign(new Error("Cannot find module 'lz4-wasm-nodejs'"), { code: 'MODULE_NOT_FOUND' });
    return resolve.call(this, request, ...rest);
  };
  setLogger({ info: () => {}, warn: (m) => warnings.push(m) });
});
afterAll(() => {
  delete process.env.NAPI_RS_NATIVE_LIBRARY_PATH;
  resolver._resolveFilename = resolve;
  setLogger(null);
});

describe('without any LZ4 compressor', () => {
  it('writes literal-only envelope blocks and deflate frames, both read back, and says why once', async () => {
    const codec = await createEnvelopeFormat();
    const input = Buffer.alloc(10_000, 'abc');
    const envelope = codec.encode(input);
    expect(envelope.length).toBeGreaterThan(input.length);
    expect(Buffer.from(codec.decode(envelope).data).equals(input)).toBe(true);
    const framed = frame(input);
    expect(framed[2]! & 0x03).toBe(0x01); // deflate
    expect(Buffer.from(unframe(framed)).equals(input)).toBe(true);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/lz4-napi\) and its WebAssembly build \(lz4-wasm-nodejs\) unavailable: entries are compressed with deflate/);
  });
});
