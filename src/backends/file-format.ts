/**
 * FileBackend's on-disk format: entry file names, the 14-byte header of the cachekit Python original, and the
 * expiry arithmetic around it.
 *
 *   `C` `K` | version u8 (1) | reserved u8 (0) | flags u16 BE (0) | expiry u64 BE (unix seconds, 0 = never) | payload
 */
import { createHash } from 'node:crypto';
import { LONE_SURROGATE } from './support.js';
import { nowMs } from '../shared/clock.js';

const MAGIC_0 = 0x43; // 'C'
const MAGIC_1 = 0x4b; // 'K'
const FORMAT_VERSION = 1;
export const HEADER_BYTES = 14;

/** An entry file's name: sha256 hex of its key. */
export const ENTRY_NAME = /^[0-9a-f]{64}$/;
/** A key lock's name: the entry's name plus `.lock`. */
export const KEY_LOCK_NAME = /^[0-9a-f]{64}\.lock$/;

/** sha256 hex of the key's UTF-8. Keys with lone surrogates (which UTF-8 cannot carry) hash their UTF-16 units. */
export function entryName(key: string): string {
  const hash = createHash('sha256');
  if (LONE_SURROGATE.test(key)) hash.update('\u0000utf16:').update(Buffer.from(key, 'utf16le'));
  else hash.update(key, 'utf8');
  return hash.digest('hex');
}

/** Finite, not negative, and small enough that the expiry in milliseconds stays an exact integer. */
export function validTtl(ttlSeconds: number): boolean {
  return typeof ttlSeconds === 'number' && Number.isFinite(ttlSeconds) && ttlSeconds >= 0 && ttlSeconds < 1e12;
}

/** Unix seconds, rounded up so an entry never expires before its TTL (it may live up to one second longer). */
export function expiryOf(ttlSeconds: number | undefined): number {
  return ttlSeconds && ttlSeconds > 0 ? Math.ceil((nowMs() + ttlSeconds * 1000) / 1000) : 0;
}

export function remainingOf(expirySec: number): number | null {
  return expirySec === 0 ? null : Math.max(0, expirySec * 1000 - nowMs());
}

export function encodeEntry(value: Uint8Array, expirySec: number): Buffer {
  const data = Buffer.allocUnsafeSlow(HEADER_BYTES + value.byteLength);
  data[0] = MAGIC_0;
  data[1] = MAGIC_1;
  data[2] = FORMAT_VERSION;
  data[3] = 0; // reserved
  data.writeUInt16BE(0, 4); // flags: no compression or encryption at this layer
  data.writeBigUInt64BE(BigInt(expirySec), 6);
  data.set(value, HEADER_BYTES);
  return data;
}

/** The expiry in unix seconds, or `null` when the header is not ours (foreign file, other version, unknown flags). */
export function parseHeader(buffer: Buffer): number | null {
  if (buffer.byteLength < HEADER_BYTES || buffer[0] !== MAGIC_0 || buffer[1] !== MAGIC_1) return null;
  if (buffer[2] !== FORMAT_VERSION || buffer[3] !== 0 || buffer.readUInt16BE(4) !== 0) return null;
  return Number(buffer.readBigUInt64BE(6));
}
