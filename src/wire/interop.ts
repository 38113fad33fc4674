/**
 * Interop mode (protocol notes section 4): entries a Python cachekit service and this project share.
 *
 *   key   = `{namespace}:{operation}:{blake2b-256 hex of canonical MessagePack of the flat argument array}`
 *   value = one plain canonical MessagePack document (no envelope, no compression)
 *
 * JS has no datetime-with-microseconds or UUID type, so {@link InteropDateTime} and {@link InteropUuid} carry them;
 * a `Date` is accepted too (millisecond precision). {@link Float64} marks a number that Python holds as a float.
 *
 * As cachekit-ts 0.2 and cachekit-py 0.21+: a JS number that is an integer beyond 2^53 is refused (it may already have
 * been rounded, and would come back as a BigInt: pass a BigInt, or Float64 for a float quantity); the namespaces
 * `ns` and `nsapi` are reserved (CachekitIO reads `ns:`/`nsapi:` keys as its own); `..` is refused in a namespace or
 * operation (CachekitIO refuses it in any key). A value `-0` is stored as float64 `-0.0`; as an argument it is 0.
 */
import { blake2b } from '@noble/hashes/blake2.js';
import { CanonicalMsgpackError, Float64, decodeCanonical, encodeCanonical, type CanonicalProfile, type DecodeOptions } from './msgpack-canonical.js';

export { Float64, CanonicalMsgpackError, type DecodeOptions } from './msgpack-canonical.js';

/** A namespace/operation/datetime/UUID that interop mode refuses. */
export class InteropError extends Error {
  override readonly name = 'InteropError';
}

/** Namespace and operation segments: a full-string match (JS `$` without the m flag does not accept a trailing newline). */
export const INTEROP_SEGMENT = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** Namespaces CachekitIO parses as its own key prefixes (exact match, namespace only: `nsx` and operation `ns` are fine). */
export const RESERVED_INTEROP_NAMESPACES: ReadonlySet<string> = new Set(['ns', 'nsapi']);

/** Why `value` cannot be an interop namespace or operation, or undefined when it can. */
export function interopSegmentProblem(kind: 'namespace' | 'operation', value: unknown): string | undefined {
  if (typeof value !== 'string') return `must be a string, got ${value === null ? 'null' : typeof value}`;
  if (!INTEROP_SEGMENT.test(value)) return `must match ${INTEROP_SEGMENT.source} (cachekit's segment rule), got ${JSON.stringify(value)}`;
  if (value.includes('..')) return `must not contain ".." (CachekitIO refuses it anywhere in a key), got ${JSON.stringify(value)}`;
  if (kind === 'namespace' && RESERVED_INTEROP_NAMESPACES.has(value)) {
    return `${JSON.stringify(value)} is reserved (CachekitIO reads keys starting "${value}:" as its own namespaced keys)`;
  }
  return undefined;
}

const TWO_64 = 2 ** 64;
const MINUS_TWO_63 = -(2 ** 63);

const ISO_DATETIME = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/** A timezone-aware instant with microsecond precision (Python's aware `datetime`). */
export class InteropDateTime {
  private constructor(readonly epochMicros: bigint) {}

  /** ISO 8601 with a mandatory UTC offset (`Z` or `±HH:MM`); digits past microseconds are floored. */
  static fromISO(text: string): InteropDateTime {
    const m = ISO_DATETIME.exec(text);
    if (!m) throw new InteropError(`datetime ${JSON.stringify(text)} is not ISO 8601 with a UTC offset (naive datetimes are refused)`);
    const [, y, mo, d, h, mi, s, frac = '', offset = 'Z'] = m;
    const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
    const check = new Date(ms);
    // Date.UTC rolls over silently (Feb 30 -> Mar 1): refuse fields out of range instead.
    if (
      !Number.isFinite(ms) ||
      check.getUTCDate() !== Number(d) ||
      check.getUTCMonth() + 1 !== Number(mo) ||
      check.getUTCHours() !== Number(h) ||
      Number(mi) > 59 ||
      Number(s) > 59
    ) {
      throw new InteropError(`datetime ${JSON.stringify(text)} is out of range`);
    }
    let offsetMinutes = 0;
    if (offset !== 'Z') {
      const sign = offset.startsWith('-') ? -1 : 1;
      const [oh, om] = [Number(offset.slice(1, 3)), Number(offset.slice(4, 6))];
      if (oh > 23 || om > 59) throw new InteropError(`datetime ${JSON.stringify(text)} has an invalid UTC offset`);
      offsetMinutes = sign * (oh * 60 + om);
    }
    const micros = BigInt(ms) * 1000n + BigInt(`${frac}000000`.slice(0, 6)) - BigInt(offsetMinutes) * 60_000_000n;
    return new InteropDateTime(micros);
  }

  static fromDate(date: Date): InteropDateTime {
    const ms = date.getTime();
    if (!Number.isFinite(ms)) throw new InteropError('invalid Date');
    return new InteropDateTime(BigInt(ms) * 1000n);
  }

  /** Seconds since the epoch, as Python's `micros / 10**6` (one correctly rounded float64 division). */
  get timestamp(): number {
    return Number(this.epochMicros) / 1e6;
  }

  /** Python's `isoformat()` of the UTC instant: fractional part only when non-zero, offset `+00:00`. */
  toISO(): string {
    const micros = this.epochMicros;
    let seconds = micros / 1_000_000n;
    if (seconds * 1_000_000n > micros) seconds -= 1n; // floor, also before the epoch
    const fracMicros = Number(micros - seconds * 1_000_000n);
    const base = new Date(Number(seconds) * 1000).toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z
    const fraction = fracMicros === 0 ? '' : `.${String(fracMicros).padStart(6, '0')}`;
    return `${base.slice(0, 19)}${fraction}+00:00`;
  }
}

/** A UUID, written as its lowercase hyphenated string (Python `str(uuid)`). */
export class InteropUuid {
  readonly value: string;
  constructor(text: string) {
    const lower = text.toLowerCase();
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(lower)) {
      throw new InteropError(`${JSON.stringify(text)} is not a hyphenated UUID`);
    }
    this.value = lower;
  }
}

/** Maps the interop wrapper types to MessagePack values for the given profile. */
function normalize(value: unknown, profile: CanonicalProfile): unknown {
  if (typeof value === 'number') {
    // An int past 2^53 held in a double may be the rounded neighbour of the intended one: no exact key, and a value
    // would come back as a BigInt. (Past the int64/uint64 range it is a float64 on every side, as the references.)
    if (!Number.isSafeInteger(value) && Number.isInteger(value) && value >= MINUS_TWO_63 && value < TWO_64) {
      throw new CanonicalMsgpackError(
        `the number ${value} is an integer beyond 2^53, which a JS number cannot hold exactly: pass it as a BigInt (${BigInt(value)}n), or as Float64 for a float quantity`,
      );
    }
    return value;
  }
  if (typeof value !== 'object' || value === null) return value;
  if (value instanceof Date) value = InteropDateTime.fromDate(value);
  if (value instanceof InteropDateTime) {
    // Arguments: the float timestamp (integral ones collapse to ints); values: the sentinel map of wire-format.md.
    return profile === 'args' ? new Float64(value.timestamp) : { __datetime__: true, value: value.toISO() };
  }
  if (value instanceof InteropUuid) return value.value;
  return value;
}

function checkSegment(kind: 'namespace' | 'operation', segment: string): void {
  const problem = interopSegmentProblem(kind, segment);
  if (problem) throw new InteropError(`interop ${kind} ${problem}`);
}

/** Canonical MessagePack of the flat argument array (the bytes the key hashes); errors name the argument (`args[1]`). */
export function canonicalArgs(args: readonly unknown[]): Uint8Array {
  return encodeCanonical(args, 'args', normalize, 'args');
}

/** blake2b-256 hex of the canonical argument array. */
export function interopArgsHash(args: readonly unknown[]): string {
  return Buffer.from(blake2b(canonicalArgs(args), { dkLen: 32 })).toString('hex');
}

/** The shared cache key `{namespace}:{operation}:{args hash}`; throws InteropError / CanonicalMsgpackError. */
export function interopKey(namespace: string, operation: string, args: readonly unknown[]): string {
  checkSegment('namespace', namespace);
  checkSegment('operation', operation);
  if (!Array.isArray(args)) throw new InteropError('args must be the flat argument array');
  return `${namespace}:${operation}:${interopArgsHash(args)}`;
}

/** The stored bytes of an interop value: one canonical MessagePack document. */
export function encodeInteropValue(value: unknown): Uint8Array {
  return encodeCanonical(value, 'value', normalize, 'value');
}

/**
 * `value` with every datetime sentinel map (`{ __datetime__: true, value: ISO }`, exactly those two keys) turned back
 * into a `Date`, as cachekit-ts does on read: a JS loader that returned a Date gets a Date from a hit too. Digits past
 * milliseconds (a Python writer's microseconds) are floored; a sentinel whose text is not a valid instant stays a map.
 */
export function reviveInteropDates(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = reviveInteropDates(value[i]);
    return value;
  }
  if (value instanceof Map) {
    for (const [k, v] of value) value.set(k, reviveInteropDates(v));
    return value;
  }
  if (value instanceof Uint8Array) return value;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  if (keys.length === 2 && record.__datetime__ === true && typeof record.value === 'string') {
    try {
      const micros = InteropDateTime.fromISO(record.value).epochMicros;
      let ms = micros / 1000n;
      if (ms * 1000n > micros) ms -= 1n; // floor, also before the epoch
      return new Date(Number(ms));
    } catch {
      return value;
    }
  }
  for (const key of keys) record[key] = reviveInteropDates(record[key]);
  return value;
}

/** Decodes a stored interop value; throws CanonicalMsgpackError on anything malformed (a miss for the caller). */
export function decodeInteropValue(bytes: Uint8Array, options?: DecodeOptions): unknown {
  return decodeCanonical(bytes, options);
}
