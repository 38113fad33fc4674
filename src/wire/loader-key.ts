/**
 * The argument hash of `cache(fn)` keys (not interop mode, which keeps cachekit's canonical rules): hex SHA-256 of
 * `"cachekit-next:args:1\n"` followed by the encoding below of the argument array, trailing `undefined` arguments
 * left out (an optional parameter left out hashes like an absent one). Pinned across releases by
 * test/wire/loader-key-vectors.json: any change here is a new version of the prefix.
 *
 * The encoding is MessagePack, canonical (shortest forms, deterministic order), with extension types for the JS types
 * MessagePack lacks, so two arguments of different types never hash alike:
 *
 * - `null`, booleans, strings (UTF-8) as MessagePack; a string with a lone surrogate as ext 1 (its UTF-16LE units).
 * - numbers: safe integers as the shortest int (`-0` as `0`, as `===` and Map keys treat it); every other number
 *   (fractions, `NaN`, `±Infinity`, integers beyond 2^53) as float64.
 * - `undefined` (in arrays, or an argument before a defined one): ext 0, empty.
 * - arrays: MessagePack arrays (a hole reads as `undefined`).
 * - plain objects (null prototype too): maps with keys sorted by their UTF-8 bytes; properties whose value is
 *   `undefined` are left out (like absent ones, as JSON does).
 * - bigint: ext 2, the decimal digits (`-12`). Date: ext 3, float64 of `getTime()` (NaN for an invalid date).
 * - Map: ext 4 wrapping an array of alternating keys and values, entries sorted by the bytes of the encoded key, then
 *   value (so insertion order does not matter). Set: ext 5 wrapping an array of the encoded elements, sorted bytewise.
 * - URL: ext 6, `href`. ArrayBuffer: ext 7, its bytes. Typed arrays and DataView: ext 8, one byte naming the kind
 *   (see KINDS; a Buffer is a Uint8Array) then the elements' bytes, little-endian.
 * - anything else (functions, symbols, class instances, cycles): an ArgumentKeyError naming the argument, before the
 *   function runs. Pass `key` to key such a function yourself.
 */
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';

/** An argument that has no key: thrown by `keyFor` and by calls, before the function runs. */
export class ArgumentKeyError extends TypeError {
  override readonly name = 'ArgumentKeyError';
  /** Where: `args[1]`, `args[0].filter.since`... */
  readonly path: string;
  constructor(path: string, reason: string) {
    super(`${path} ${reason}: it cannot be part of a cache key (pass \`key\`, a string or a function of the arguments, to key this function yourself)`);
    this.path = path;
  }
}

const PREFIX = new TextEncoder().encode('cachekit-next:args:1\n');
const MAX_DEPTH = 256;
const LITTLE_ENDIAN = endianness() === 'LE';
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const utf8 = new TextEncoder();

enum Ext {
  Undefined = 0,
  Utf16 = 1,
  BigInt = 2,
  Date = 3,
  Map = 4,
  Set = 5,
  Url = 6,
  ArrayBuffer = 7,
  View = 8,
}

/** The kind byte of ext 8 (never renumbered: keys depend on it). */
const KINDS = new Map<unknown, number>([
  [Uint8Array.prototype, 1],
  [Buffer.prototype, 1],
  [Int8Array.prototype, 2],
  [Uint8ClampedArray.prototype, 3],
  [Int16Array.prototype, 4],
  [Uint16Array.prototype, 5],
  [Int32Array.prototype, 6],
  [Uint32Array.prototype, 7],
  [Float32Array.prototype, 8],
  [Float64Array.prototype, 9],
  [BigInt64Array.prototype, 10],
  [BigUint64Array.prototype, 11],
  [DataView.prototype, 12],
]);

class Writer {
  buf = Buffer.allocUnsafe(256);
  len = 0;

  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  byte(b: number): void {
    this.ensure(1);
    this.buf[this.len++] = b;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  /** A type byte and a big-endian unsigned number of `width` bytes. */
  tagged(tag: number, value: number, width: 1 | 2 | 4): void {
    this.ensure(1 + width);
    this.buf[this.len++] = tag;
    this.buf.writeUIntBE(value, this.len, width);
    this.len += width;
  }
  result(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

function writeNumber(w: Writer, v: number): void {
  if (!Number.isSafeInteger(v)) {
    w.ensure(9);
    w.buf[w.len++] = 0xcb;
    w.buf.writeDoubleBE(Number.isNaN(v) ? NaN : v, w.len);
    w.len += 8;
  } else if (v >= 0) {
    if (v <= 0x7f) w.byte(v);
    else if (v <= 0xff) w.tagged(0xcc, v, 1);
    else if (v <= 0xffff) w.tagged(0xcd, v, 2);
    else if (v <= 0xffffffff) w.tagged(0xce, v, 4);
    else {
      w.ensure(9);
      w.buf[w.len++] = 0xcf;
      w.buf.writeBigUInt64BE(BigInt(v), w.len);
      w.len += 8;
    }
  } else if (v >= -32) w.byte(v & 0xff);
  else if (v >= -0x80) w.tagged(0xd0, v & 0xff, 1);
  else if (v >= -0x8000) w.tagged(0xd1, v & 0xffff, 2);
  else if (v >= -0x80000000) w.tagged(0xd2, v >>> 0, 4);
  else {
    w.ensure(9);
    w.buf[w.len++] = 0xd3;
    w.buf.writeBigInt64BE(BigInt(v), w.len);
    w.len += 8;
  }
}

function writeHeader(w: Writer, n: number, fix: number, fixMax: number, t16: number, t32: number): void {
  if (n <= fixMax) w.byte(fix | n);
  else if (n <= 0xffff) w.tagged(t16, n, 2);
  else w.tagged(t32, n, 4);
}

function writeStr(w: Writer, bytes: Uint8Array): void {
  if (bytes.length < 32) w.byte(0xa0 | bytes.length);
  else if (bytes.length <= 0xff) w.tagged(0xd9, bytes.length, 1);
  else writeHeader(w, bytes.length, 0, -1, 0xda, 0xdb);
  w.bytes(bytes);
}

function writeExt(w: Writer, type: Ext, body: Uint8Array): void {
  const n = body.length;
  const fixed = [1, 2, 4, 8, 16].indexOf(n);
  if (fixed !== -1) w.byte(0xd4 + fixed);
  else if (n <= 0xff) w.tagged(0xc7, n, 1);
  else if (n <= 0xffff) w.tagged(0xc8, n, 2);
  else w.tagged(0xc9, n, 4);
  w.byte(type);
  w.bytes(body);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

function viewBytes(view: ArrayBufferView, kind: number): Uint8Array {
  const raw = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  const width = 'BYTES_PER_ELEMENT' in view ? (view as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT : 1;
  if (LITTLE_ENDIAN || width === 1 || kind === 12) return raw;
  // Big-endian machines: each element's bytes reversed, so keys agree with little-endian ones.
  const out = Uint8Array.from(raw);
  for (let i = 0; i < out.length; i += width) out.subarray(i, i + width).reverse();
  return out;
}

class KeyWalk {
  readonly segments: string[];
  readonly ancestors = new Set<object>();
  constructor(position: number) {
    this.segments = [`args[${position}]`];
  }
  fail(reason: string): never {
    throw new ArgumentKeyError(this.segments.join(''), reason);
  }
  /** `value` encoded on its own (for sorting Map entries and Set elements). */
  alone(value: unknown, depth: number): Buffer {
    const inner = new Writer();
    writeValue(inner, value, this, depth);
    return inner.result();
  }
}

function describe(value: object): string {
  const ctor = (value as { constructor?: { name?: unknown } }).constructor;
  const name = typeof ctor === 'function' && typeof ctor.name === 'string' && ctor.name ? ctor.name : 'exotic';
  return `is an instance of ${name}`;
}

function writeValue(w: Writer, v: unknown, walk: KeyWalk, depth: number): void {
  switch (typeof v) {
    case 'number':
      return writeNumber(w, v);
    case 'string':
      if (LONE_SURROGATE.test(v)) return writeExt(w, Ext.Utf16, Buffer.from(v, 'utf16le'));
      return writeStr(w, utf8.encode(v));
    case 'boolean':
      return w.byte(v ? 0xc3 : 0xc2);
    case 'undefined':
      return writeExt(w, Ext.Undefined, new Uint8Array(0));
    case 'bigint':
      return writeExt(w, Ext.BigInt, utf8.encode(v.toString()));
    case 'object':
      break;
    default:
      return walk.fail(`is a ${typeof v}`);
  }
  if (v === null) return w.byte(0xc0);
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto === Date.prototype) {
    const body = Buffer.allocUnsafe(8);
    body.writeDoubleBE((v as Date).getTime());
    return writeExt(w, Ext.Date, body);
  }
  if (proto === URL.prototype) return writeExt(w, Ext.Url, utf8.encode((v as URL).href));
  if (proto === ArrayBuffer.prototype) return writeExt(w, Ext.ArrayBuffer, new Uint8Array(v as ArrayBuffer));
  const kind = KINDS.get(proto);
  if (kind !== undefined) {
    const bytes = viewBytes(v as ArrayBufferView, kind);
    const body = Buffer.allocUnsafe(1 + bytes.length);
    body[0] = kind;
    body.set(bytes, 1);
    return writeExt(w, Ext.View, body);
  }
  if (depth >= MAX_DEPTH) walk.fail(`is nested deeper than ${MAX_DEPTH} levels`);
  if (walk.ancestors.has(v)) walk.fail('refers back to an object it is inside (a cycle)');
  walk.ancestors.add(v);
  try {
    if (proto === Array.prototype) {
      const array = v as unknown[];
      writeHeader(w, array.length, 0x90, 15, 0xdc, 0xdd);
      for (let i = 0; i < array.length; i++) {
        walk.segments.push(`[${i}]`);
        writeValue(w, array[i], walk, depth + 1);
        walk.segments.pop();
      }
    } else if (proto === Object.prototype || proto === null) {
      const entries: [Uint8Array, unknown, string][] = [];
      for (const key of Object.keys(v)) {
        const value = (v as Record<string, unknown>)[key];
        if (value === undefined) continue;
        if (LONE_SURROGATE.test(key)) walk.fail(`has a key with a lone surrogate (${JSON.stringify(key)})`);
        entries.push([utf8.encode(key), value, key]);
      }
      entries.sort((a, b) => compareBytes(a[0], b[0]));
      writeHeader(w, entries.length, 0x80, 15, 0xde, 0xdf);
      for (const [key, value, name] of entries) {
        writeStr(w, key);
        walk.segments.push(/^[A-Za-z_$][\w$]*$/.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`);
        writeValue(w, value, walk, depth + 1);
        walk.segments.pop();
      }
    } else if (proto === Map.prototype) {
      const entries: [Buffer, Buffer][] = [];
      let index = 0;
      for (const [key, value] of v as Map<unknown, unknown>) {
        walk.segments.push(`<Map key ${index}>`);
        const k = walk.alone(key, depth + 1);
        walk.segments.pop();
        walk.segments.push(`<Map value ${index++}>`);
        entries.push([k, walk.alone(value, depth + 1)]);
        walk.segments.pop();
      }
      entries.sort((a, b) => compareBytes(a[0], b[0]) || compareBytes(a[1], b[1]));
      const body = new Writer();
      writeHeader(body, entries.length * 2, 0x90, 15, 0xdc, 0xdd);
      for (const [key, value] of entries) {
        body.bytes(key);
        body.bytes(value);
      }
      writeExt(w, Ext.Map, body.result());
    } else if (proto === Set.prototype) {
      let index = 0;
      const items: Buffer[] = [];
      for (const item of v as Set<unknown>) {
        walk.segments.push(`<Set item ${index++}>`);
        items.push(walk.alone(item, depth + 1));
        walk.segments.pop();
      }
      items.sort(compareBytes);
      const body = new Writer();
      writeHeader(body, items.length, 0x90, 15, 0xdc, 0xdd);
      for (const item of items) body.bytes(item);
      writeExt(w, Ext.Set, body.result());
    } else {
      walk.fail(describe(v));
    }
  } finally {
    walk.ancestors.delete(v);
  }
}

/** The bytes hashed for `args` (trailing `undefined` left out): the prefix, then the encoded argument array. */
export function argumentBytes(args: readonly unknown[]): Buffer {
  let end = args.length;
  while (end > 0 && args[end - 1] === undefined) end--;
  const w = new Writer();
  w.bytes(PREFIX);
  writeHeader(w, end, 0x90, 15, 0xdc, 0xdd);
  for (let i = 0; i < end; i++) writeValue(w, args[i], new KeyWalk(i), 0);
  return w.result();
}

/** Hex SHA-256 of `argumentBytes(args)`; throws ArgumentKeyError naming the argument that has no key. */
export function hashArgs(args: readonly unknown[]): string {
  return createHash('sha256').update(argumentBytes(args)).digest('hex');
}
