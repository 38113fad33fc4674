/**
 * The byte frame every cachekit-next entry is stored in: a 3-byte header, then MessagePack, compressed when that pays.
 *
 *   byte 0-1  magic 0xC4 0x4B ("cK")
 *   byte 2    flags: bit 0 = raw deflate; bit 1 = LZ4 block preceded by its u32 LE uncompressed size;
 *             bit 2 = a CRC-32 of the stored body follows
 *   byte 3-6  CRC-32 (big-endian) of the body as stored, when bit 2 is set (every frame written since it exists)
 *   then      payload
 *
 * The header lets a reader refuse foreign bytes (another program's value under the same key) as a clean miss, and
 * the checksum turns bytes corrupted at rest or in transit into a miss instead of a wrong page. CRC-32 is zlib's
 * (native, several GB/s), over the stored (usually compressed) body: the cheapest check of exactly the bytes that
 * travelled.
 * LZ4 is the default: it decompresses several times faster than inflate (bench/README.md), which keeps an L2 hit near
 * the cost of the raw read; deflate stores fewer bytes, for slow links.
 */
import { Packr, type Unpackr } from 'msgpackr';
import * as zlib from 'node:zlib';
import { deflateRawSync, inflateRawSync, constants as zlibConstants } from 'node:zlib';
import { lz4DecodeBlock } from './envelope.js';
import { lz4Compressor, nativeLz4 } from './lz4.js';

const MAGIC_0 = 0xc4;
const MAGIC_1 = 0x4b;
const FLAG_DEFLATE = 0x01;
const FLAG_LZ4 = 0x02;
const FLAG_CRC32 = 0x04;
const HEADER_BYTES = 3;
const CRC_BYTES = 4;

/** zlib's CRC-32 (Node >= 20.15; looked up, not imported by name, so older Node loads this module), else a table. */
const zlibCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;
const crc32: (data: Uint8Array) => number = typeof zlibCrc32 === 'function' ? (data) => zlibCrc32(data) >>> 0 : tableCrc32;

let crcTable: Uint32Array | undefined;
export function tableCrc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
/** LZ4 cannot expand data more than 255-fold: a larger declared size is a corrupt or hostile frame. */
const LZ4_MAX_RATIO = 255;

/** Never inflate beyond this: a corrupt or hostile frame must not exhaust memory. */
export const MAX_INFLATED_BYTES = 512 * 1024 * 1024;

export interface CompressionOptions {
  /** `lz4` (fast; about 3x smaller pages) or `deflate` (about 4x smaller, slower to read). @default 'lz4' */
  algorithm?: 'lz4' | 'deflate';
  /** Payloads at least this large are compressed (when that saves 10%). `false` disables compression. @default 4096 */
  thresholdBytes?: number | false;
  /** zlib level 1 (fastest) to 9 (smallest), for deflate. @default 1 */
  level?: number;
}

// Plain MessagePack: no records extension, so the bytes stay readable by any MessagePack implementation.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, variableMapSize: true });

export function packValue(value: unknown): Uint8Array {
  return packr.pack(value);
}

export function unpackValue(bytes: Uint8Array): unknown {
  assertBounded(bytes);
  return unpackWhole(packr, bytes);
}

/**
 * The one MessagePack value `bytes` holds, all of it. Bytes left after the value are a clean Error of ours:
 * msgpackr's own error for them quotes the decoded value through JSON.stringify, which never ends on a value such as
 * a sparse array of 2^32 - 1 slots (found by test/fuzz/value-codec.test.ts).
 */
export function unpackWhole(unpackr: Pick<Unpackr, 'unpackMultiple'>, bytes: Uint8Array): unknown {
  let value: unknown;
  let end = -1;
  unpackr.unpackMultiple(bytes as Buffer, (first: unknown, _start?: number, stop?: number) => {
    value = first;
    end = stop ?? -1;
    return false;
  });
  if (end !== bytes.byteLength) throw new Error(`corrupt MessagePack: ${bytes.byteLength - end} bytes after the value`);
  return value;
}

/** Bytes each fixed-size MessagePack type occupies after its type byte (-1: invalid, 0: none or handled below). */
const FIXED_SIZES: Record<number, number> = {
  0xc0: 0,
  0xc2: 0,
  0xc3: 0,
  0xca: 4,
  0xcb: 8,
  0xcc: 1,
  0xcd: 2,
  0xce: 4,
  0xcf: 8,
  0xd0: 1,
  0xd1: 2,
  0xd2: 4,
  0xd3: 8,
  0xd4: 2,
  0xd5: 3,
  0xd6: 5,
  0xd7: 9,
  0xd8: 17,
};

/**
 * One-byte extensions msgpackr reads together with the value that follows them: Set, Error and RegExp (`moreTypes`),
 * a record definition, and `cache(fn)`'s value extension (typed-value.ts).
 */
const EXT_WITH_VALUE = new Set([0x73, 0x65, 0x78, 0x72, 0x4b]);

/**
 * Walks the MessagePack structure without building it and throws when a declared length or element count exceeds
 * the bytes that remain. msgpackr pre-allocates arrays from the declared count, so without this a 6-byte corrupt
 * value could make it allocate hundreds of megabytes before failing.
 */
export function assertBounded(bytes: Uint8Array): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.byteLength;
  let pos = 0;
  let pending = 1;
  const need = (n: number) => {
    if (n > end - pos) throw new Error(`corrupt MessagePack: ${n} bytes declared at offset ${pos}, ${end - pos} left`);
  };
  const uint = (width: number): number => {
    need(width);
    const value = width === 1 ? view.getUint8(pos) : width === 2 ? view.getUint16(pos) : view.getUint32(pos);
    pos += width;
    return value;
  };
  while (pending > 0) {
    need(1);
    const type = bytes[pos++]!;
    pending--;
    let skip = 0;
    let items = 0;
    if (type <= 0x7f || type >= 0xe0) continue;
    else if (type <= 0x8f) items = (type & 0x0f) * 2;
    else if (type <= 0x9f) items = type & 0x0f;
    else if (type <= 0xbf) skip = type & 0x1f;
    else if (type === 0xc4 || type === 0xd9) skip = uint(1);
    else if (type === 0xc5 || type === 0xda) skip = uint(2);
    else if (type === 0xc6 || type === 0xdb) skip = uint(4);
    else if (type === 0xc7) skip = uint(1) + 1;
    else if (type === 0xc8) skip = uint(2) + 1;
    else if (type === 0xc9) skip = uint(4) + 1;
    else if (type === 0xdc) items = uint(2);
    else if (type === 0xdd) items = uint(4);
    else if (type === 0xde) items = uint(2) * 2;
    else if (type === 0xdf) items = uint(4) * 2;
    else if (type in FIXED_SIZES) {
      skip = FIXED_SIZES[type]!;
      if (type === 0xd4 && pos < end && EXT_WITH_VALUE.has(bytes[pos]!)) items = 1;
    } else throw new Error(`corrupt MessagePack: invalid type byte 0x${type.toString(16)} at offset ${pos - 1}`);
    need(skip);
    pos += skip;
    // Every element takes at least one byte: a count above what is left is a lie.
    need(items);
    pending += items;
  }
}

/** Frames `payload` (already MessagePack), compressing it above the threshold when that saves bytes. */
export function frame(payload: Uint8Array, compression: CompressionOptions = {}): Uint8Array {
  const threshold = compression.thresholdBytes ?? 4096;
  let body = payload;
  let flags = 0;
  if (threshold !== false && payload.byteLength >= threshold) {
    // LZ4 natively or in WebAssembly (one format for every instance); deflate when asked, or when neither loads.
    const lz4 = compression.algorithm === 'deflate' ? null : lz4Compressor();
    const compressed = lz4 ? lz4(payload) : deflateRawSync(payload, { level: compression.level ?? 1, strategy: zlibConstants.Z_DEFAULT_STRATEGY });
    if (compressed.byteLength < payload.byteLength * 0.9) {
      body = compressed;
      flags |= lz4 ? FLAG_LZ4 : FLAG_DEFLATE;
    }
  }
  const out = Buffer.allocUnsafe(HEADER_BYTES + CRC_BYTES + body.byteLength);
  out[0] = MAGIC_0;
  out[1] = MAGIC_1;
  out[2] = flags | FLAG_CRC32;
  out.writeUInt32BE(crc32(body), HEADER_BYTES);
  out.set(body, HEADER_BYTES + CRC_BYTES);
  return out;
}

/** The MessagePack payload of a frame; throws on foreign, truncated or oversized input. */
export function unframe(bytes: Uint8Array): Uint8Array {
  if (bytes.byteLength < HEADER_BYTES || bytes[0] !== MAGIC_0 || bytes[1] !== MAGIC_1) {
    throw new Error('not a cachekit-next entry (bad magic)');
  }
  let flags = bytes[2]!;
  let body = bytes.subarray(HEADER_BYTES);
  if (flags & FLAG_CRC32) {
    if (body.byteLength < CRC_BYTES) throw new Error('truncated frame (no checksum)');
    const expected = ((body[0]! << 24) | (body[1]! << 16) | (body[2]! << 8) | body[3]!) >>> 0;
    body = body.subarray(CRC_BYTES);
    if (crc32(body) !== expected) throw new Error('checksum mismatch: the entry was corrupted at rest or in transit');
    flags &= ~FLAG_CRC32;
  }
  if (flags === 0) return body;
  if (flags === FLAG_DEFLATE) return inflateRawSync(body, { maxOutputLength: MAX_INFLATED_BYTES });
  if (flags === FLAG_LZ4) {
    if (body.byteLength < 5) throw new Error('truncated LZ4 frame');
    const size = Buffer.from(body.buffer, body.byteOffset, body.byteLength).readUInt32LE(0);
    if (size > MAX_INFLATED_BYTES || size > (body.byteLength - 4) * LZ4_MAX_RATIO) {
      throw new Error(`LZ4 frame declares ${size} bytes from ${body.byteLength - 4}: refused`);
    }
    const native = nativeLz4();
    // Without the native binding, the bounds-checked TypeScript block decoder reads the same bytes.
    return native ? native.uncompressSync(body) : lz4DecodeBlock(body.subarray(4), size);
  }
  throw new Error(`unknown frame flags 0x${flags.toString(16)}`);
}

/**
 * What a TieredCache stores a value as: turns a T into the bytes kept in L2 and back (the Next entry serializers
 * frame them, see next-entry.ts). A decode error is treated as a miss. ("Codec" before: the word now names nothing.)
 */
export interface Serializer<T> {
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

/** Stores bytes as they are. */
export const bytesSerializer: Serializer<Uint8Array> = { encode: (value) => value, decode: (bytes) => bytes };
