/**
 * The LZ4 block compressor of envelopes (envelope.ts) and entry frames (frame.ts), loaded lazily, once per process:
 * lz4-napi (lz4_flex, the same LZ4 as cachekit-core, native), else lz4-wasm-nodejs (lz4_flex built to WebAssembly:
 * slower to write, the same block format), else none (envelopes then hold literal-only blocks, frames use deflate).
 * Every reader decodes every LZ4 block (natively, or with the TypeScript decoder), so instances with and without the
 * native module share one store: no miss, no error, whichever wrote an entry.
 */
import { createRequire } from 'node:module';
import { logger } from '../shared/log.js';

export interface Lz4Native {
  compressSync(data: Buffer): Buffer;
  uncompressSync(data: Uint8Array): Buffer;
}

/** Compresses `data` into an LZ4 block preceded by its uncompressed size (u32 LE), as lz4-napi's compressSync. */
export type Lz4Compress = (data: Uint8Array) => Uint8Array;

/** Set by tsup: `true` in the CommonJS build, `false` in the ESM build; absent when the sources run directly (tests). */
declare const __CACHEKIT_CJS__: boolean | undefined;

// Bound once, to a name: output file tracing (nft, Turbopack) follows calls through a variable holding
// createRequire(import.meta.url), not through an inline createRequire(...)(...).
const requireHere = createRequire(import.meta.url);

/**
 * Each package by a call that Next's output file tracing sees, so `output: 'standalone'` gets it with its binary: a
 * literal `require(...)` in the CommonJS build (the one Next loads as cacheHandler; tsup.config.ts keeps it literal),
 * `requireHere(...)` in the ESM build.
 */
function requireNative(): Lz4Native {
  if (typeof __CACHEKIT_CJS__ !== 'undefined' && __CACHEKIT_CJS__) return require('lz4-napi') as Lz4Native;
  return requireHere('lz4-napi') as Lz4Native;
}

function requireWasm(): { compress(input: Uint8Array): Uint8Array } {
  if (typeof __CACHEKIT_CJS__ !== 'undefined' && __CACHEKIT_CJS__) return require('lz4-wasm-nodejs') as { compress(input: Uint8Array): Uint8Array };
  return requireHere('lz4-wasm-nodejs') as { compress(input: Uint8Array): Uint8Array };
}

let native: Lz4Native | null | undefined;
let nativeError = '';
let compressor: Lz4Compress | null | undefined;

/** The native LZ4 binding (lz4-napi), or `null` where it cannot load (no prebuilt binary, not shipped). */
export function nativeLz4(): Lz4Native | null {
  if (native === undefined) {
    try {
      native = requireNative();
    } catch (error) {
      native = null;
      nativeError = (error as Error).message;
    }
  }
  return native;
}

/** Whether the native LZ4 binding loaded. */
export function nativeLz4Available(): boolean {
  return nativeLz4() !== null;
}

const asBuffer = (data: Uint8Array): Buffer => (Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength));

/** The best LZ4 compressor this process has, or `null` (none loads); says once which one it fell back to and why. */
export function lz4Compressor(): Lz4Compress | null {
  if (compressor !== undefined) return compressor;
  const binding = nativeLz4();
  if (binding) return (compressor = (data) => binding.compressSync(asBuffer(data)));
  try {
    const wasm = requireWasm();
    compressor = (data) => wasm.compress(data);
    logger().warn(
      `[cachekit] native LZ4 (lz4-napi) unavailable, compressing with its WebAssembly build (lz4-wasm-nodejs): the same stored format, slower writes: ${nativeError}`,
    );
  } catch (error) {
    compressor = null;
    logger().warn(
      `[cachekit] native LZ4 (lz4-napi) and its WebAssembly build (lz4-wasm-nodejs) unavailable: entries are compressed with deflate, loader values stored uncompressed: ${nativeError}; ${(error as Error).message}`,
    );
  }
  return compressor;
}
