/**
 * The byte frame every cachekit-next entry is stored in: a 3-byte header, then MessagePack, deflated when that pays.
 *
 *   byte 0-1  magic 0xC4 0x4B ("cK")
 *   byte 2    flags: bit 0 = payload is raw-deflate compressed
 *   byte 3-   payload
 *
 * The header lets a reader refuse foreign bytes (another program's value under the same key) as a clean miss.
 */
import { Packr } from 'msgpackr';
import { deflateRawSync, inflateRawSync, constants as zlibConstants } from 'node:zlib';

const MAGIC_0 = 0xc4;
const MAGIC_1 = 0x4b;
const FLAG_DEFLATE = 0x01;
const HEADER_BYTES = 3;

/** Never inflate beyond this: a corrupt or hostile frame must not exhaust memory. */
export const MAX_INFLATED_BYTES = 512 * 1024 * 1024;

export interface CompressionOptions {
  /** Payloads at least this large are compressed (when that makes them smaller). `false` disables compression. @default 4096 */
  thresholdBytes?: number | false;
  /** zlib level 1 (fastest) to 9 (smallest). @default 1 */
  level?: number;
}

// Plain MessagePack: no records extension, so the bytes stay readable by any MessagePack implementation.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, variableMapSize: true });

export function packValue(value: unknown): Uint8Array {
  return packr.pack(value);
}

export function unpackValue(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}

/** Frames `payload` (already MessagePack), compressing it above the threshold when that saves bytes. */
export function frame(payload: Uint8Array, compression: CompressionOptions = {}): Uint8Array {
  const threshold = compression.thresholdBytes ?? 4096;
  let body = payload;
  let flags = 0;
  if (threshold !== false && payload.byteLength >= threshold) {
    const deflated = deflateRawSync(payload, { level: compression.level ?? 1, strategy: zlibConstants.Z_DEFAULT_STRATEGY });
    if (deflated.byteLength < payload.byteLength * 0.9) {
      body = deflated;
      flags |= FLAG_DEFLATE;
    }
  }
  const out = Buffer.allocUnsafe(HEADER_BYTES + body.byteLength);
  out[0] = MAGIC_0;
  out[1] = MAGIC_1;
  out[2] = flags;
  out.set(body, HEADER_BYTES);
  return out;
}

/** The MessagePack payload of a frame; throws on foreign, truncated or oversized input. */
export function unframe(bytes: Uint8Array): Uint8Array {
  if (bytes.byteLength < HEADER_BYTES || bytes[0] !== MAGIC_0 || bytes[1] !== MAGIC_1) {
    throw new Error('not a cachekit-next entry (bad magic)');
  }
  const flags = bytes[2]!;
  if ((flags & ~FLAG_DEFLATE) !== 0) throw new Error(`unknown frame flags 0x${flags.toString(16)}`);
  const body = bytes.subarray(HEADER_BYTES);
  if (flags & FLAG_DEFLATE) return inflateRawSync(body, { maxOutputLength: MAX_INFLATED_BYTES });
  return body;
}
