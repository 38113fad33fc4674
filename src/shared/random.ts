/**
 * The one source of randomness of this package (nonces, lock tokens, instance ids, temp-file names, retry jitter).
 *
 * Why not `crypto.randomBytes()` / `randomUUID()` / `Math.random()` where they are needed: under Cache Components,
 * Next patches those synchronous sources and aborts a prerender that calls one outside a 'use cache' scope (random
 * values are I/O to it, like the clock), and handler paths run inside such renders: an encrypted `set` drew a fresh
 * nonce there. So bytes come from Node's CSPRNG in blocks, each block drawn outside the caller's async context (no
 * render sees it); every byte is handed out once. A block serves ~340 nonces, so the hot path is a slice.
 */
import { randomBytes as cryptoRandomBytes } from 'node:crypto';
import { runOutsideAsyncContext } from './async-context.js';

const BLOCK_BYTES = 4096;
let block = Buffer.alloc(0);
let offset = 0;

/** `size` bytes from the CSPRNG, never handed out before (a view: callers copy or encode them). */
export function randomBytes(size: number): Buffer {
  if (size > BLOCK_BYTES) return runOutsideAsyncContext(() => cryptoRandomBytes(size));
  if (offset + size > block.length) {
    block = runOutsideAsyncContext(() => cryptoRandomBytes(BLOCK_BYTES));
    offset = 0;
  }
  const bytes = block.subarray(offset, offset + size);
  offset += size;
  return bytes;
}

/** A random RFC 4122 version-4 UUID (same format as `crypto.randomUUID()`). */
export function randomUUID(): string {
  const b = Buffer.from(randomBytes(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = b.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A uniform number in [0, 1) (retry jitter), in place of `Math.random()`. */
export function randomFraction(): number {
  return randomBytes(4).readUInt32BE(0) / 0x1_0000_0000;
}
