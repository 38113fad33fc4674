// biome-ignore-all lint/suspicious/noExplicitAny: vectors are JSON files of the Python SDK, read field by field
/** Loads the shared cachekit protocol vectors (CI clones the repo with shared/ beside it). */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Float64 } from '../../src/wire/msgpack-canonical.js';
import { InteropDateTime, InteropUuid } from '../../src/wire/interop.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const VECTORS_DIR = path.resolve(repoRoot, '..', 'shared', 'protocol-vectors');

export function loadVectors<T = any>(file: string): T {
  const full = path.join(VECTORS_DIR, file);
  if (!existsSync(full)) {
    throw new Error(`protocol vectors missing: ${full} (expected shared/protocol-vectors beside the repository)`);
  }
  return JSON.parse(readFileSync(full, 'utf8')) as T;
}

/** Our own interop vectors (where the shared ones are silent): test/wire/interop-vectors-ours.json. */
export function loadOurVectors<T = any>(): T {
  return JSON.parse(readFileSync(fileURLToPath(new URL('./interop-vectors-ours.json', import.meta.url)), 'utf8')) as T;
}

export const hex = (s: string): Buffer => Buffer.from(s, 'hex');
export const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** The tagged JSON of interop-mode.json: single-key objects with a $-prefixed key are typed values. */
export function untag(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(untag);
  if (v === null || typeof v !== 'object') return v;
  const entries = Object.entries(v);
  if (entries.length === 1 && entries[0]![0].startsWith('$')) {
    const [tag, raw] = entries[0]! as [string, any];
    switch (tag) {
      case '$set':
        return new Set((raw as unknown[]).map(untag));
      case '$bytes':
        return hex(raw as string);
      case '$datetime':
        return InteropDateTime.fromISO(raw as string);
      case '$uuid':
        return new InteropUuid(raw as string);
      case '$float':
        return new Float64(Number(raw));
      case '$int':
        return BigInt(raw as string);
      case '$jsnumber':
        return Number(raw as string); // a JS number, not a BigInt (ours: -0, integers past 2^53)
      default:
        throw new Error(`unknown tag ${tag}`);
    }
  }
  return Object.fromEntries(entries.map(([k, x]) => [k, untag(x)]));
}
