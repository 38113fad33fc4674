/**
 * The cachekit ByteStorage envelope (protocol notes section 4, vectors in protocol-vectors/wire-format.json): integrity
 * and compression around serialized bytes, byte-compatible with cachekit-core (Rust, lz4_flex + xxhash).
 *
 *   MessagePack array of 4: [ bin LZ4-block(data), [8 uints: xxHash3-64(data) big-endian], original size, format ]
 *
 * Readers also accept the legacy data form (an array of uint8 instead of bin). A read verifies size and checksum and
 * refuses decompression bombs (original size over 512 MiB, ratio over 1000) before allocating anything.
 *
 * Below `compressThresholdBytes` the block is written literal-only: still a valid LZ4 block every reader decodes, but
 * no match search and no native call (it does not pay there; see bench/envelope.ts). lz4_flex writes small or
 * incompressible inputs the same way, so the outputs are byte-identical to the vectors either way. Without the native
 * module, lz4.ts compresses with the WebAssembly build (blocks may differ in bytes, never in what they decode to).
 */
import { createXXHash3, type IHasher } from 'hash-wasm';
import { lz4Compressor, nativeLz4 } from './lz4.js';

/** An envelope that is malformed, corrupt, oversized or a decompression bomb. Always a clean Error. */
export class EnvelopeError extends Error {
  override readonly name = 'EnvelopeError';
}

export const ENVELOPE_LIMITS = Object.freeze({
  maxUncompressedBytes: 512 * 1024 * 1024,
  maxCompressedBytes: 512 * 1024 * 1024,
  maxCompressionRatio: 1000,
});

export interface EnvelopeOptions {
  /** Inputs shorter than this are stored as a literal-only LZ4 block (no compression attempt). @default 256 */
  compressThresholdBytes?: number;
  /** Decode with the native LZ4 decoder when the original is at least this large (TypeScript below it). @default 1024 */
  nativeDecodeMinBytes?: number;
}

export interface EnvelopeContents {
  data: Uint8Array;
  /** The serialization format recorded in the envelope (`"msgpack"` for every cachekit writer today). */
  format: string;
}

export interface EnvelopeFormat {
  encode(data: Uint8Array, format?: string): Uint8Array;
  /** The checked contents; throws EnvelopeError on anything that is not a sound envelope. */
  decode(envelope: Uint8Array): EnvelopeContents;
}

export { nativeLz4, nativeLz4Available, type Lz4Native } from './lz4.js';

let hasherPromise: Promise<IHasher> | undefined;

/** cachekit's ByteStorage envelope format; async once, for the xxHash3 WebAssembly module, synchronous afterwards. */
export async function createEnvelopeFormat(options: EnvelopeOptions = {}): Promise<EnvelopeFormat> {
  const threshold = options.compressThresholdBytes ?? 256;
  const nativeDecodeMin = options.nativeDecodeMinBytes ?? 1024;
  hasherPromise ??= createXXHash3();
  const hasher = await hasherPromise;
  const checksum = (data: Uint8Array): Uint8Array => hasher.init().update(data).digest('binary');
  return {
    encode: (data, format = 'msgpack') => encodeEnvelope(data, format, checksum(data), threshold),
    decode: (envelope) => decodeEnvelope(envelope, checksum, nativeDecodeMin),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// LZ4 block format

/** A literal-only LZ4 block: one sequence, token + length bytes + the data. */
export function lz4LiteralBlock(data: Uint8Array): Uint8Array {
  const n = data.length;
  const extra = n >= 15 ? Math.floor((n - 15) / 255) + 1 : 0;
  const out = new Uint8Array(1 + extra + n);
  let p = 0;
  if (n < 15) out[p++] = n << 4;
  else {
    out[p++] = 0xf0;
    let rest = n - 15;
    while (rest >= 255) {
      out[p++] = 255;
      rest -= 255;
    }
    out[p++] = rest;
  }
  out.set(data, p);
  return out;
}

function lz4Compress(data: Uint8Array, threshold: number): Uint8Array {
  const compress = data.length < threshold ? null : lz4Compressor();
  if (compress === null) return lz4LiteralBlock(data);
  // The compressors prepend the uncompressed size (u32 LE); the envelope carries it separately.
  return compress(data).subarray(4);
}

/** Decodes an LZ4 block into exactly `size` bytes; every read and write is bounds-checked. */
export function lz4DecodeBlock(src: Uint8Array, size: number): Uint8Array {
  const dst = new Uint8Array(size);
  let s = 0;
  let d = 0;
  const end = src.length;
  for (;;) {
    if (s >= end) throw new EnvelopeError('LZ4 block ends inside a sequence');
    const token = src[s++]!;
    let lit = token >>> 4;
    if (lit === 15) {
      let b: number;
      do {
        if (s >= end) throw new EnvelopeError('LZ4 literal length runs past the block');
        b = src[s++]!;
        lit += b;
      } while (b === 255);
    }
    if (lit > end - s || lit > size - d) throw new EnvelopeError('LZ4 literals run past the block or the declared size');
    // Short runs byte by byte: a subarray per sequence costs more than the copy itself.
    if (lit > 32) {
      dst.set(src.subarray(s, s + lit), d);
      s += lit;
      d += lit;
    } else for (let i = 0; i < lit; i++) dst[d++] = src[s++]!;
    if (s === end) break; // the last sequence has literals only
    if (end - s < 2) throw new EnvelopeError('LZ4 block ends inside a match offset');
    const offset = src[s]! | (src[s + 1]! << 8);
    s += 2;
    if (offset === 0 || offset > d) throw new EnvelopeError('LZ4 match offset points outside the output');
    let len = (token & 15) + 4;
    if ((token & 15) === 15) {
      let b: number;
      do {
        if (s >= end) throw new EnvelopeError('LZ4 match length runs past the block');
        b = src[s++]!;
        len += b;
      } while (b === 255);
    }
    if (len > size - d) throw new EnvelopeError('LZ4 match runs past the declared size');
    if (offset >= len && len > 32) {
      dst.copyWithin(d, d - offset, d - offset + len);
      d += len;
    } else for (let i = 0; i < len; i++, d++) dst[d] = dst[d - offset]!; // an overlapping copy repeats the pattern
  }
  if (d !== size) throw new EnvelopeError(`LZ4 block decodes to ${d} bytes, the envelope says ${size}`);
  return dst;
}

function lz4Decompress(src: Uint8Array, size: number, nativeMin: number): Uint8Array {
  const native = size < nativeMin ? null : nativeLz4();
  if (native === null) return lz4DecodeBlock(src, size);
  const prefixed = Buffer.allocUnsafe(4 + src.length);
  prefixed.writeUInt32LE(size, 0);
  prefixed.set(src, 4);
  let out: Buffer;
  try {
    out = native.uncompressSync(prefixed);
  } catch (error) {
    throw new EnvelopeError('corrupt LZ4 block', { cause: error });
  }
  if (out.length !== size) throw new EnvelopeError(`LZ4 block decodes to ${out.length} bytes, the envelope says ${size}`);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// MessagePack framing (written by hand: four fixed fields, exactly as rmp_serde + serde_bytes write them)

const MSGPACK_FORMAT = Buffer.from('msgpack');

/** Writes a MessagePack unsigned int (shortest form, up to u32) at `p`; returns the next position. */
function putUint(out: Uint8Array, p: number, v: number): number {
  if (v <= 0x7f) out[p++] = v;
  else if (v <= 0xff) {
    out[p++] = 0xcc;
    out[p++] = v;
  } else if (v <= 0xffff) {
    out[p++] = 0xcd;
    out[p++] = v >>> 8;
    out[p++] = v & 0xff;
  } else {
    out[p++] = 0xce;
    out[p++] = v >>> 24;
    out[p++] = (v >>> 16) & 0xff;
    out[p++] = (v >>> 8) & 0xff;
    out[p++] = v & 0xff;
  }
  return p;
}

function encodeEnvelope(data: Uint8Array, format: string, sum: Uint8Array, threshold: number): Uint8Array {
  if (data.length > ENVELOPE_LIMITS.maxUncompressedBytes) {
    throw new EnvelopeError(`value of ${data.length} bytes exceeds the ${ENVELOPE_LIMITS.maxUncompressedBytes}-byte envelope limit`);
  }
  const fmt = format === 'msgpack' ? MSGPACK_FORMAT : Buffer.from(format, 'utf8');
  if (fmt.length > 31) throw new EnvelopeError('format name longer than 31 bytes');
  const block = lz4Compress(data, threshold);
  const n = block.length;
  // One exact-size buffer: bin header (<= 5) + block + checksum array (<= 17) + size (<= 5) + format.
  const out = new Uint8Array(1 + 5 + n + 17 + 5 + 1 + fmt.length);
  let p = 0;
  out[p++] = 0x94;
  if (n <= 0xff) {
    out[p++] = 0xc4;
    out[p++] = n;
  } else if (n <= 0xffff) {
    out[p++] = 0xc5;
    out[p++] = n >>> 8;
    out[p++] = n & 0xff;
  } else {
    out[p++] = 0xc6;
    out[p++] = n >>> 24;
    out[p++] = (n >>> 16) & 0xff;
    out[p++] = (n >>> 8) & 0xff;
    out[p++] = n & 0xff;
  }
  out.set(block, p);
  p += n;
  out[p++] = 0x98;
  for (let i = 0; i < 8; i++) p = putUint(out, p, sum[i]!);
  p = putUint(out, p, data.length);
  out[p++] = 0xa0 | fmt.length;
  out.set(fmt, p);
  p += fmt.length;
  return out.subarray(0, p);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class Cursor {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}
  byte(): number {
    if (this.pos >= this.buf.length) throw new EnvelopeError('truncated envelope');
    return this.buf[this.pos++]!;
  }
  be(width: number): number {
    let v = 0;
    for (let i = 0; i < width; i++) v = v * 256 + this.byte();
    return v;
  }
  /** A MessagePack unsigned integer (any width; values past 2^53 are refused as too large anyway). */
  uint(what: string): number {
    const b = this.byte();
    if (b <= 0x7f) return b;
    if (b === 0xcc) return this.be(1);
    if (b === 0xcd) return this.be(2);
    if (b === 0xce) return this.be(4);
    if (b === 0xcf) {
      const v = this.be(8);
      if (v > Number.MAX_SAFE_INTEGER) throw new EnvelopeError(`${what} is too large`);
      return v;
    }
    throw new EnvelopeError(`${what} is not an unsigned integer (0x${b.toString(16)})`);
  }
  arrayLength(what: string): number {
    const b = this.byte();
    if (b >= 0x90 && b <= 0x9f) return b & 0x0f;
    if (b === 0xdc) return this.be(2);
    if (b === 0xdd) return this.be(4);
    throw new EnvelopeError(`${what} is not an array (0x${b.toString(16)})`);
  }
  take(n: number): Uint8Array {
    if (n > this.buf.length - this.pos) throw new EnvelopeError('truncated envelope');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

function readCompressed(c: Cursor): Uint8Array {
  const b = c.buf[c.pos];
  if (b === 0xc4 || b === 0xc5 || b === 0xc6) {
    c.pos++;
    const n = c.be(b === 0xc4 ? 1 : b === 0xc5 ? 2 : 4);
    if (n > ENVELOPE_LIMITS.maxCompressedBytes) throw new EnvelopeError('compressed data exceeds the size limit');
    return c.take(n);
  }
  // Legacy form: an array of uint8 (each 1 or 2 bytes), so a count beyond the remaining bytes is refused up front.
  const n = c.arrayLength('compressed data');
  if (n > c.buf.length - c.pos) throw new EnvelopeError('truncated envelope');
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const v = c.uint('compressed data byte');
    if (v > 0xff) throw new EnvelopeError('compressed data byte out of range');
    out[i] = v;
  }
  return out;
}

function decodeEnvelope(envelope: Uint8Array, checksum: (data: Uint8Array) => Uint8Array, nativeMin: number): EnvelopeContents {
  const c = new Cursor(envelope);
  if (c.byte() !== 0x94) throw new EnvelopeError('not a cachekit envelope (expected a MessagePack array of 4)');
  const compressed = readCompressed(c);
  if (c.arrayLength('checksum') !== 8) throw new EnvelopeError('checksum is not 8 bytes');
  const expected = new Uint8Array(8);
  for (let i = 0; i < 8; i++) {
    const v = c.uint('checksum byte');
    if (v > 0xff) throw new EnvelopeError('checksum byte out of range');
    expected[i] = v;
  }
  const size = c.uint('original size');
  const fb = c.byte();
  let flen: number;
  if (fb >= 0xa0 && fb <= 0xbf) flen = fb & 0x1f;
  else if (fb === 0xd9) flen = c.be(1);
  else throw new EnvelopeError('format is not a string');
  let format: string;
  try {
    const raw = c.take(flen);
    format = MSGPACK_FORMAT.equals(raw) ? 'msgpack' : strictUtf8.decode(raw);
  } catch (error) {
    if (error instanceof EnvelopeError) throw error;
    throw new EnvelopeError('format is not UTF-8', { cause: error });
  }
  if (c.pos !== envelope.length) throw new EnvelopeError('trailing bytes after the envelope');

  if (size > ENVELOPE_LIMITS.maxUncompressedBytes) throw new EnvelopeError(`original size ${size} exceeds the 512 MiB limit`);
  if (size > compressed.length * ENVELOPE_LIMITS.maxCompressionRatio) {
    throw new EnvelopeError(`compression ratio over ${ENVELOPE_LIMITS.maxCompressionRatio} refused (decompression bomb)`);
  }
  const data = lz4Decompress(compressed, size, nativeMin);
  const actual = checksum(data);
  for (let i = 0; i < 8; i++) {
    if (actual[i] !== expected[i]) throw new EnvelopeError('checksum mismatch: the value is corrupt');
  }
  return { data, format };
}
