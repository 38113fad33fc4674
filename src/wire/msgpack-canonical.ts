/**
 * Canonical MessagePack (cachekit interop profile, protocol notes section 4): shortest encodings, map keys sorted by
 * code point, integers in [-2^63, 2^64-1], no NaN/Infinity, no extension types. msgpackr cannot give this (it does not
 * sort keys and chooses float32/records on its own), so the encoder is written here; it is small.
 *
 * Two profiles: `args` (cache-key arguments) collapses integral floats to ints; `value` (stored values) keeps an
 * explicit {@link Float64} as float64. A plain JS number that is an integer is an int in both profiles (JS has one
 * number type; wrap it in Float64 to say "float"), except `-0`: a value keeps it as float64 `-0.0` (what cachekit-py
 * and cachekit-ts write), an argument collapses it to int 0 like any integral float.
 *
 * An error names where in the input it arose (`args[1].ids[3]`), so a caller can tell which argument to fix.
 */

/** A number that must be written as a float64 (a Python `float`), even when it is integral. */
export class Float64 {
  constructor(readonly value: number) {}
}

/** An encode or decode failure: the input is outside canonical MessagePack. Always a clean Error. */
export class CanonicalMsgpackError extends Error {
  override readonly name = 'CanonicalMsgpackError';
  /** Where in the encoded input (`[1].ids[3]`), filled in as the error leaves each container; '' for the root. */
  path = '';
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** Adds one container step in front of the error's path (only on the error path: no cost while encoding). */
function within(error: unknown, step: string | number | { setElement: number }): never {
  if (error instanceof CanonicalMsgpackError) {
    const segment =
      typeof step === 'number'
        ? `[${step}]`
        : typeof step === 'object'
          ? `[<set element ${step.setElement}>]`
          : IDENTIFIER.test(step)
            ? `.${step}`
            : `[${JSON.stringify(step)}]`;
    error.path = segment + error.path;
  }
  throw error;
}

export type CanonicalProfile = 'args' | 'value';

/** Encoders may map non-MessagePack JS values (Date, UUID wrappers) to MessagePack ones before encoding. */
export type Normalizer = (value: unknown, profile: CanonicalProfile) => unknown;

const MAX_DEPTH = 256;
const UINT64_MAX = (1n << 64n) - 1n;
const INT64_MIN = -(1n << 63n);
const TWO_64 = 2 ** 64;
const MINUS_TWO_63 = -(2 ** 63);
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const utf8 = new TextEncoder();

class Writer {
  buf = new Uint8Array(256);
  view = new DataView(this.buf.buffer);
  len = 0;

  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(b: number): void {
    this.ensure(1);
    this.buf[this.len++] = b;
  }
  u8u8(tag: number, v: number): void {
    this.ensure(2);
    this.buf[this.len++] = tag;
    this.buf[this.len++] = v;
  }
  u16(tag: number, v: number): void {
    this.ensure(3);
    this.buf[this.len] = tag;
    this.view.setUint16(this.len + 1, v);
    this.len += 3;
  }
  u32(tag: number, v: number): void {
    this.ensure(5);
    this.buf[this.len] = tag;
    this.view.setUint32(this.len + 1, v);
    this.len += 5;
  }
  u64(tag: number, v: bigint): void {
    this.ensure(9);
    this.buf[this.len] = tag;
    this.view.setBigUint64(this.len + 1, BigInt.asUintN(64, v));
    this.len += 9;
  }
  f64(v: number): void {
    this.ensure(9);
    this.buf[this.len] = 0xcb;
    this.view.setFloat64(this.len + 1, v);
    this.len += 9;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return a.length - b.length;
}

function writeInt(w: Writer, v: bigint): void {
  if (v > UINT64_MAX || v < INT64_MIN) throw new CanonicalMsgpackError(`integer ${v} is outside [-2^63, 2^64-1]`);
  if (v >= 0n) {
    if (v <= 0x7fn) w.u8(Number(v));
    else if (v <= 0xffn) w.u8u8(0xcc, Number(v));
    else if (v <= 0xffffn) w.u16(0xcd, Number(v));
    else if (v <= 0xffffffffn) w.u32(0xce, Number(v));
    else w.u64(0xcf, v);
  } else if (v >= -32n) w.u8(Number(v) & 0xff);
  else if (v >= -0x80n) w.u8u8(0xd0, Number(v) & 0xff);
  else if (v >= -0x8000n) w.u16(0xd1, Number(v) & 0xffff);
  else if (v >= -0x80000000n) w.u32(0xd2, Number(v) >>> 0);
  else w.u64(0xd3, v);
}

function writeNumber(w: Writer, v: number, forceFloat: boolean): void {
  if (!Number.isFinite(v)) throw new CanonicalMsgpackError(`${v} is not allowed (NaN and Infinity have no canonical form)`);
  // Integral values in the int range are ints (float -2^63 included, 2^64 excluded: it stays float64).
  if (!forceFloat && Number.isInteger(v) && v >= MINUS_TWO_63 && v < TWO_64) {
    if (Number.isSafeInteger(v)) writeSmallInt(w, v);
    else writeInt(w, BigInt(v));
    return;
  }
  w.f64(v);
}

function writeSmallInt(w: Writer, v: number): void {
  if (v >= 0) {
    if (v <= 0x7f) w.u8(v);
    else if (v <= 0xff) w.u8u8(0xcc, v);
    else if (v <= 0xffff) w.u16(0xcd, v);
    else if (v <= 0xffffffff) w.u32(0xce, v);
    else w.u64(0xcf, BigInt(v));
  } else if (v >= -32) w.u8(v & 0xff);
  else if (v >= -0x80) w.u8u8(0xd0, v & 0xff);
  else if (v >= -0x8000) w.u16(0xd1, v & 0xffff);
  else if (v >= -0x80000000) w.u32(0xd2, v >>> 0);
  else w.u64(0xd3, BigInt(v));
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** UTF-8 of `s`, refusing lone surrogates (TextEncoder would silently write U+FFFD). */
function utf8Of(s: string, what: string): Uint8Array {
  if (LONE_SURROGATE.test(s)) throw new CanonicalMsgpackError(`${what} contains a lone UTF-16 surrogate (not valid UTF-8)`);
  return utf8.encode(s);
}

function writeStringHeader(w: Writer, n: number): void {
  if (n < 32) w.u8(0xa0 | n);
  else if (n <= 0xff) w.u8u8(0xd9, n);
  else if (n <= 0xffff) w.u16(0xda, n);
  else w.u32(0xdb, n);
}

function writeString(w: Writer, s: string): void {
  // ASCII (most keys and values): one byte per code unit, written in place without an encoder allocation.
  if (s.length < 256 && isAscii(s)) {
    writeStringHeader(w, s.length);
    w.ensure(s.length);
    for (let i = 0; i < s.length; i++) w.buf[w.len++] = s.charCodeAt(i);
    return;
  }
  const b = utf8Of(s, 'string');
  writeStringHeader(w, b.length);
  w.bytes(b);
}

function writeHeader(w: Writer, n: number, fix: number, fixMax: number, t16: number, t32: number): void {
  if (n <= fixMax) w.u8(fix | n);
  else if (n <= 0xffff) w.u16(t16, n);
  else if (n <= 0xffffffff) w.u32(t32, n);
  else throw new CanonicalMsgpackError(`container of ${n} elements is too large`);
}

function isPlainObject(v: object): v is Record<string, unknown> {
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

interface EncodeContext {
  profile: CanonicalProfile;
  normalize: Normalizer | undefined;
  seen: Set<object>;
}

function writeValue(w: Writer, input: unknown, ctx: EncodeContext, depth: number): void {
  if (depth > MAX_DEPTH) throw new CanonicalMsgpackError(`nesting deeper than ${MAX_DEPTH}`);
  const v = ctx.normalize ? ctx.normalize(input, ctx.profile) : input;
  switch (typeof v) {
    case 'number':
      // -0 is integral, yet an int 0 would bring back +0: a value keeps its sign as float64 -0.0.
      return writeNumber(w, v, v === 0 && ctx.profile === 'value' && Object.is(v, -0));
    case 'bigint':
      return writeInt(w, v);
    case 'string':
      return writeString(w, v);
    case 'boolean':
      return w.u8(v ? 0xc3 : 0xc2);
    case 'object':
      break;
    default:
      throw new CanonicalMsgpackError(`a ${typeof v} has no MessagePack form`);
  }
  if (v === null) return w.u8(0xc0);
  if (v instanceof Float64) return writeNumber(w, v.value, ctx.profile === 'value');
  if (v instanceof Uint8Array) {
    const n = v.length;
    if (n <= 0xff) w.u8u8(0xc4, n);
    else if (n <= 0xffff) w.u16(0xc5, n);
    else w.u32(0xc6, n);
    return w.bytes(v);
  }
  if (ctx.seen.has(v)) throw new CanonicalMsgpackError('cyclic structure');
  ctx.seen.add(v);
  try {
    if (Array.isArray(v)) {
      writeHeader(w, v.length, 0x90, 15, 0xdc, 0xdd);
      for (let i = 0; i < v.length; i++) {
        try {
          writeValue(w, v[i], ctx, depth + 1);
        } catch (error) {
          within(error, i);
        }
      }
    } else if (v instanceof Set) {
      // A set is an array of its distinct elements' encodings, sorted bytewise (so 2 and 2.0 are one element).
      const encoded = [...v].map((item, i) => {
        const inner = new Writer();
        try {
          writeValue(inner, item, ctx, depth + 1);
        } catch (error) {
          within(error, { setElement: i });
        }
        return inner.result();
      });
      encoded.sort(compareBytes);
      const distinct = encoded.filter((b, i) => i === 0 || compareBytes(b, encoded[i - 1]!) !== 0);
      writeHeader(w, distinct.length, 0x90, 15, 0xdc, 0xdd);
      for (const b of distinct) w.bytes(b);
    } else if (v instanceof Map || isPlainObject(v)) {
      const entries: [unknown, unknown][] = v instanceof Map ? [...v.entries()] : Object.entries(v);
      let ascii = true;
      for (const [k] of entries) {
        if (typeof k !== 'string') throw new CanonicalMsgpackError('map keys must be strings');
        if (ascii && !isAscii(k)) ascii = false;
      }
      writeHeader(w, entries.length, 0x80, 15, 0xde, 0xdf);
      if (ascii) {
        // For ASCII keys, UTF-16 code-unit order is byte order: no encoding needed to sort.
        entries.sort((a, b) => ((a[0] as string) < (b[0] as string) ? -1 : (a[0] as string) > (b[0] as string) ? 1 : 0));
        for (const [key, value] of entries) {
          writeString(w, key as string);
          try {
            writeValue(w, value, ctx, depth + 1);
          } catch (error) {
            within(error, key as string);
          }
        }
      } else {
        const keyed = entries.map(([k, value]) => ({ key: k as string, utf8: utf8Of(k as string, 'map key'), value }));
        // UTF-8 byte order is code-point order (UTF-16 code-unit order is not, past the BMP).
        keyed.sort((a, b) => compareBytes(a.utf8, b.utf8));
        for (const { key, utf8: bytes, value } of keyed) {
          writeStringHeader(w, bytes.length);
          w.bytes(bytes);
          try {
            writeValue(w, value, ctx, depth + 1);
          } catch (error) {
            within(error, key);
          }
        }
      }
    } else {
      throw new CanonicalMsgpackError(`a ${v.constructor?.name ?? 'object'} has no canonical MessagePack form`);
    }
  } finally {
    ctx.seen.delete(v);
  }
}

/**
 * Canonical MessagePack bytes of `value`; throws CanonicalMsgpackError for anything without a canonical form, its
 * message ending with where that is (`at args[2].when`, `root` naming the input).
 */
export function encodeCanonical(value: unknown, profile: CanonicalProfile = 'value', normalize?: Normalizer, root: string = profile): Uint8Array {
  const w = new Writer();
  try {
    writeValue(w, value, { profile, normalize, seen: new Set() }, 0);
  } catch (error) {
    if (error instanceof CanonicalMsgpackError && error.path !== '') error.message += ` (at ${root}${error.path})`;
    throw error;
  }
  return w.result();
}

// ---------------------------------------------------------------------------------------------------------------
// Decoder: any well-formed MessagePack without extension types, NaN or Infinity (the writer need not be canonical).

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export interface DecodeOptions {
  /** Floats come back as plain numbers, or as {@link Float64} (so a re-encode keeps them floats). @default 'number' */
  floats?: 'number' | 'Float64';
}

class Reader {
  pos = 0;
  readonly view: DataView;
  constructor(
    readonly buf: Uint8Array,
    readonly floatsAsFloat64: boolean,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  need(n: number): void {
    if (n > this.buf.length - this.pos) throw new CanonicalMsgpackError('truncated MessagePack');
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }
  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }
  take(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

function bigOrNumber(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function finite(v: number): number {
  if (!Number.isFinite(v)) throw new CanonicalMsgpackError(`${v} is not allowed in interop MessagePack`);
  return v;
}

function readString(r: Reader, n: number): string {
  if (n <= 64) {
    // Short ASCII strings (most keys): decoded in place; anything else goes to the strict decoder.
    const start = r.pos;
    const end = start + n;
    if (end <= r.buf.length) {
      let out = '';
      let i = start;
      for (; i < end; i++) {
        const b = r.buf[i]!;
        if (b > 0x7f) break;
        out += String.fromCharCode(b);
      }
      if (i === end) {
        r.pos = end;
        return out;
      }
    }
  }
  try {
    return utf8Decoder.decode(r.take(n));
  } catch (error) {
    if (error instanceof CanonicalMsgpackError) throw error;
    throw new CanonicalMsgpackError('string is not valid UTF-8', { cause: error });
  }
}

function readArray(r: Reader, n: number, depth: number): unknown[] {
  // Every element takes at least one byte: a count beyond the remaining bytes is a lie, refused up front. And no
  // preallocation: nested arrays each claiming the rest of the input would otherwise allocate depth x input size.
  r.need(n);
  const out: unknown[] = [];
  for (let i = 0; i < n; i++) out.push(readValue(r, depth + 1));
  return out;
}

function readMap(r: Reader, n: number, depth: number): Record<string, unknown> | Map<unknown, unknown> {
  r.need(n * 2);
  const obj: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const k = readValue(r, depth + 1);
    if (typeof k !== 'string') {
      // A key that is not a string: the whole map is a Map (keys so far kept, in order).
      const map = new Map<unknown, unknown>(Object.entries(obj));
      map.set(k, readValue(r, depth + 1));
      for (i++; i < n; i++) map.set(readValue(r, depth + 1), readValue(r, depth + 1));
      return map;
    }
    const v = readValue(r, depth + 1);
    // A "__proto__" key is data, never a prototype change.
    if (k === '__proto__') Object.defineProperty(obj, k, { value: v, enumerable: true, writable: true, configurable: true });
    else obj[k] = v;
  }
  return obj;
}

function readValue(r: Reader, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new CanonicalMsgpackError(`nesting deeper than ${MAX_DEPTH}`);
  const b = r.u8();
  if (b <= 0x7f) return b;
  if (b >= 0xe0) return b - 0x100;
  if (b >= 0xa0 && b <= 0xbf) return readString(r, b & 0x1f);
  if (b >= 0x90 && b <= 0x9f) return readArray(r, b & 0x0f, depth);
  if (b >= 0x80 && b <= 0x8f) return readMap(r, b & 0x0f, depth);
  switch (b) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xc4:
      return r.take(r.u8()).slice();
    case 0xc5:
      return r.take(r.u16()).slice();
    case 0xc6:
      return r.take(r.u32()).slice();
    case 0xca: {
      r.need(4);
      const v = r.view.getFloat32(r.pos);
      r.pos += 4;
      return r.floatsAsFloat64 ? new Float64(finite(v)) : finite(v);
    }
    case 0xcb: {
      r.need(8);
      const v = r.view.getFloat64(r.pos);
      r.pos += 8;
      return r.floatsAsFloat64 ? new Float64(finite(v)) : finite(v);
    }
    case 0xcc:
      return r.u8();
    case 0xcd:
      return r.u16();
    case 0xce:
      return r.u32();
    case 0xcf: {
      r.need(8);
      const v = r.view.getBigUint64(r.pos);
      r.pos += 8;
      return bigOrNumber(v);
    }
    case 0xd0:
      return (r.u8() << 24) >> 24;
    case 0xd1:
      return (r.u16() << 16) >> 16;
    case 0xd2:
      return r.u32() | 0;
    case 0xd3: {
      r.need(8);
      const v = r.view.getBigInt64(r.pos);
      r.pos += 8;
      return bigOrNumber(v);
    }
    case 0xd9:
      return readString(r, r.u8());
    case 0xda:
      return readString(r, r.u16());
    case 0xdb:
      return readString(r, r.u32());
    case 0xdc:
      return readArray(r, r.u16(), depth);
    case 0xdd:
      return readArray(r, r.u32(), depth);
    case 0xde:
      return readMap(r, r.u16(), depth);
    case 0xdf:
      return readMap(r, r.u32(), depth);
    default:
      // 0xc1 (never used) and the ext family 0xc7-0xc9, 0xd4-0xd8.
      throw new CanonicalMsgpackError(`MessagePack type 0x${b.toString(16)} is not allowed in interop values`);
  }
}

/**
 * Decodes one MessagePack document (exactly: trailing bytes are an error). Ints beyond 2^53 come back as bigint,
 * maps with only string keys as plain objects (others as Map), bin as Uint8Array (a copy).
 */
export function decodeCanonical(bytes: Uint8Array, options: DecodeOptions = {}): unknown {
  const r = new Reader(bytes, options.floats === 'Float64');
  const value = readValue(r, 0);
  if (r.pos !== bytes.length) throw new CanonicalMsgpackError(`${bytes.length - r.pos} trailing bytes after the document`);
  return value;
}
