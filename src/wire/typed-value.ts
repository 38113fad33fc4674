/**
 * The typed value encoding (formerly value-codec.ts) of `cache(fn)` values: what a hit returns is what the miss returned, type for type, or the value is refused
 * before anything is written (never a silent change of type).
 *
 * Stored faithfully: `undefined`, `null`, booleans, numbers (`-0`, `NaN`, `±Infinity` included), bigints, strings
 * (lone surrogates included), plain objects (also with a null prototype), arrays (holes included), Date (invalid ones
 * too), Map, Set, URL, ArrayBuffer, DataView, Buffer, the typed arrays msgpackr knows (Int8 ... Float64, BigInt64,
 * BigUint64, Uint8Clamped) and `Symbol.for()` symbols, nested in any way. Refused with the path inside the value
 * (`result.items[3].render is a function`): functions, other symbols, instances of any other class (Error, RegExp,
 * Promise, class User ...), cycles. Getters are read once, when stored; symbol-keyed and non-enumerable properties,
 * and named properties of arrays, are not stored (as JSON and React Server Components do). Shared references are
 * stored as copies.
 *
 * Encoding (chosen by measurement, bench/typed-value.ts): msgpackr as for the handlers' entries (objects as MessagePack
 * maps), plus `moreTypes`, so Date, Set, BigInt, typed arrays, ArrayBuffer, DataView and `undefined` are read back
 * natively; what msgpackr would change (Map, `-0`, URL, lone surrogates, holes, null prototypes, an own `__proto__`
 * key, registered symbols) is written as one extension type, 0x4B, registered once with msgpackr's process-wide
 * `addExtension` (any msgpackr decoder in the process then reads type 0x4B this way). msgpackr's records mode keeps
 * Maps apart natively and is smaller, but compiles a reader per object shape on every decode: slower below ~30 KB.
 */
import { addExtension, Packr, Unpackr } from 'msgpackr';
import { unpackWhole } from './frame.js';

/** A value (or a part of it) that cannot come back from a hit as the miss returned it: the entry is not written. */
export class UnstorableValueError extends Error {
  override readonly name = 'UnstorableValueError';
  /** Where, inside the value: `result`, `result.items[3].render`, `result<Map key 2>`... */
  readonly path: string;
  constructor(path: string, reason: string) {
    super(`${path} ${reason}`);
    this.path = path;
  }
}

/** Nesting beyond this is refused (msgpackr encodes and decodes recursively). */
const MAX_DEPTH = 1000;
/** From this depth on, every container is checked against its ancestors: a cycle is found there at the latest. */
const CYCLE_CHECK_DEPTH = 64;
const EXT_TYPE = 0x4b;

enum Kind {
  NegativeZero = 0,
  Url = 1,
  Symbol = 2,
  /** A string with lone surrogates (not valid UTF-8): its UTF-16LE code units (Node's utf16le keeps them). */
  Utf16 = 3,
  /** Null prototype or an own `__proto__` key: [nullPrototype, k1, v1, k2, v2, ...]. */
  Object = 4,
  /** An array with holes: [length, index1, value1, index2, value2, ...]. */
  Sparse = 5,
  /** A Map (MessagePack maps are objects): [k1, v1, k2, v2, ...]. */
  Map = 6,
}

/** What the walk puts where msgpackr alone would change the value. */
class Special {
  constructor(
    readonly kind: Kind,
    readonly data: unknown,
  ) {}
}

function revive([kind, data]: [Kind, unknown]): unknown {
  switch (kind) {
    case Kind.NegativeZero:
      return -0;
    case Kind.Url:
      return new URL(data as string);
    case Kind.Symbol:
      return Symbol.for(data as string);
    case Kind.Utf16:
      return Buffer.from(data as Uint8Array).toString('utf16le');
    case Kind.Object: {
      const [nullPrototype, ...entries] = data as [boolean, ...unknown[]];
      const object = nullPrototype ? (Object.create(null) as Record<string, unknown>) : {};
      // defineProperty: an own `__proto__` key stays a key (assignment would set the prototype).
      for (let i = 0; i < entries.length; i += 2) {
        Object.defineProperty(object, entries[i] as string, { value: entries[i + 1], enumerable: true, writable: true, configurable: true });
      }
      return object;
    }
    case Kind.Map: {
      const entries = data as unknown[];
      const map = new Map<unknown, unknown>();
      for (let i = 0; i < entries.length; i += 2) map.set(entries[i], entries[i + 1]);
      return map;
    }
    case Kind.Sparse: {
      const [length, ...entries] = data as [number, ...unknown[]];
      const array = new Array<unknown>(length);
      for (let i = 0; i < entries.length; i += 2) {
        if (!Number.isInteger(entries[i])) throw new Error('corrupt sparse array: an index that is not an integer');
        array[entries[i] as number] = entries[i + 1];
      }
      return array;
    }
    default:
      throw new Error(`unknown value extension kind ${String(kind)}`);
  }
}

addExtension({ Class: Special, type: EXT_TYPE, write: (special: Special) => [special.kind, special.data], read: revive });

/** What msgpackr (`moreTypes`) writes and reads back as the same class: typed arrays, buffers, DataView, Date. */
const NATIVE = new Set<unknown>(
  [
    Int8Array,
    Uint8Array,
    Uint8ClampedArray,
    Int16Array,
    Uint16Array,
    Int32Array,
    Uint32Array,
    Float32Array,
    Float64Array,
    BigInt64Array,
    BigUint64Array,
    ArrayBuffer,
    DataView,
    Date,
  ]
    .map((type) => type.prototype)
    .concat([Buffer.prototype]),
);
/** Whether `s` is valid UTF-16 (no lone surrogate): String.prototype.isWellFormed, Node >= 20. */
const wellFormed = (s: string): boolean => (s as string & { isWellFormed(): boolean }).isWellFormed();

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** A path step inside a Map or Set (object keys are pushed as strings, array indices as numbers). */
class Step {
  constructor(
    readonly label: string,
    readonly index?: number,
  ) {}
  get text(): string {
    return this.index === undefined ? this.label : `<${this.label} ${this.index}>`;
  }
}

/** The walk's position, as steps formatted only when an error is reported (the walk itself stays cheap). */
class Walk {
  readonly segments: (string | number | Step)[] = [new Step('result')];
  readonly ancestors: object[] = [];

  fail(reason: string): never {
    throw new UnstorableValueError(this.path(this.segments.length), reason);
  }

  /** Reports where the path first comes back to an object it is inside (cycles are looked for only some levels down). */
  cycle(): never {
    const seen = new Map<object, number>();
    const path = [...this.ancestors];
    for (const [at, object] of path.entries()) {
      const first = seen.get(object);
      if (first !== undefined) {
        throw new UnstorableValueError(this.path(at + 1), `refers back to ${this.path(first + 1)} (a cycle)`);
      }
      seen.set(object, at);
    }
    return this.fail('is part of a cycle');
  }

  /** `result.items[3].render` for the first `steps` steps. */
  path(steps: number): string {
    return this.segments
      .slice(0, steps)
      .map((step) => (step instanceof Step ? step.text : typeof step === 'number' ? `[${step}]` : keySegment(step)))
      .join('');
  }
}

function keySegment(key: string): string {
  return IDENTIFIER.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

function describe(value: object): string {
  const ctor = (value as { constructor?: { name?: unknown } }).constructor;
  const name = typeof ctor === 'function' && typeof ctor.name === 'string' && ctor.name ? ctor.name : 'exotic';
  return `an instance of ${name}`;
}

/**
 * `value` as msgpackr should see it: the same reference where nothing changes (the usual case: no copy), else a copy
 * of the path down to each part written as a Special.
 */
function prepare(value: unknown, walk: Walk, depth: number): unknown {
  switch (typeof value) {
    case 'string':
      return wellFormed(value) ? value : new Special(Kind.Utf16, Buffer.from(value, 'utf16le'));
    case 'number':
      return value === 0 && 1 / value < 0 ? new Special(Kind.NegativeZero, null) : value;
    case 'boolean':
    case 'undefined':
    case 'bigint':
      return value;
    case 'symbol': {
      const key = Symbol.keyFor(value);
      if (key === undefined) walk.fail(`is a symbol (${String(value)}); only Symbol.for() symbols can be stored`);
      return new Special(Kind.Symbol, key);
    }
    case 'function':
      return walk.fail(`is a function${value.name ? ` (${value.name})` : ''}`);
    default:
      break;
  }
  if (value === null) return null;
  const object = value as object;
  const proto = Object.getPrototypeOf(object) as unknown;
  if (NATIVE.has(proto)) return object;
  if (proto === URL.prototype) return new Special(Kind.Url, (object as URL).href);
  if (depth >= MAX_DEPTH) walk.fail(`is nested deeper than ${MAX_DEPTH} levels`);
  if (depth >= CYCLE_CHECK_DEPTH && walk.ancestors.includes(object)) {
    walk.ancestors.push(object);
    walk.cycle();
  }
  walk.ancestors.push(object);
  try {
    if (proto === Array.prototype) return prepareArray(object as unknown[], walk, depth);
    if (proto === Object.prototype || proto === null) return prepareObject(object as Record<string, unknown>, proto === null, walk, depth);
    if (proto === Map.prototype) return prepareMap(object as Map<unknown, unknown>, walk, depth);
    if (proto === Set.prototype) return prepareSet(object as Set<unknown>, walk, depth);
    return walk.fail(`is ${describe(object)} (only plain objects, arrays, Map, Set, Date, URL, typed arrays and primitives are stored)`);
  } finally {
    walk.ancestors.pop();
  }
}

function prepareArray(array: unknown[], walk: Walk, depth: number): unknown {
  let copy: unknown[] | undefined;
  let holes = false;
  for (let i = 0; i < array.length; i++) {
    const item = array[i];
    if (item === undefined && !(i in array)) {
      holes = true;
      continue;
    }
    walk.segments.push(i);
    const prepared = prepare(item, walk, depth + 1);
    walk.segments.pop();
    if (prepared !== item) (copy ??= array.slice())[i] = prepared;
  }
  if (!holes) return copy ?? array;
  const entries: unknown[] = [array.length];
  const source = copy ?? array;
  source.forEach((item, i) => {
    entries.push(i, item);
  });
  return new Special(Kind.Sparse, entries);
}

function prepareObject(object: Record<string, unknown>, nullPrototype: boolean, walk: Walk, depth: number): unknown {
  const keys = Object.keys(object);
  if (nullPrototype) return prepareSpecialObject(object, keys, true, walk, depth);
  let copy: Record<string, unknown> | undefined;
  for (const key of keys) {
    // msgpackr renames an own `__proto__` key and writes keys as UTF-8: such objects go the Special way.
    if (key === '__proto__' || !wellFormed(key)) return prepareSpecialObject(object, keys, false, walk, depth);
    const item = object[key];
    walk.segments.push(key);
    const prepared = prepare(item, walk, depth + 1);
    walk.segments.pop();
    if (prepared !== item) (copy ??= { ...object })[key] = prepared;
  }
  return copy ?? object;
}

function prepareSpecialObject(object: Record<string, unknown>, keys: string[], nullPrototype: boolean, walk: Walk, depth: number): Special {
  const entries: unknown[] = [nullPrototype];
  for (const key of keys) {
    walk.segments.push(key);
    entries.push(prepare(key, walk, depth + 1), prepare(object[key], walk, depth + 1));
    walk.segments.pop();
  }
  return new Special(Kind.Object, entries);
}

function prepareMap(map: Map<unknown, unknown>, walk: Walk, depth: number): unknown {
  const entries: unknown[] = [];
  let index = 0;
  for (const [key, item] of map) {
    walk.segments.push(new Step('Map key', index));
    entries.push(prepare(key, walk, depth + 1));
    walk.segments.pop();
    walk.segments.push(new Step('Map value', index++));
    entries.push(prepare(item, walk, depth + 1));
    walk.segments.pop();
  }
  return new Special(Kind.Map, entries);
}

function prepareSet(set: Set<unknown>, walk: Walk, depth: number): unknown {
  let changed = false;
  const items: unknown[] = [];
  let index = 0;
  for (const item of set) {
    walk.segments.push(new Step('Set item', index++));
    const prepared = prepare(item, walk, depth + 1);
    walk.segments.pop();
    if (prepared !== item) changed = true;
    items.push(prepared);
  }
  return changed ? new Set(items) : set;
}

const OPTIONS = { useRecords: false, mapsAsObjects: true, variableMapSize: true, moreTypes: true } as const;
const packr = new Packr(OPTIONS);
// copyBuffers: a Buffer in the value is a copy, never a view of the stored bytes (each caller owns its copy).
const unpackr = new Unpackr({ ...OPTIONS, copyBuffers: true });

/** What msgpackr should write for `value`; throws UnstorableValueError (with the path) for what it cannot keep. */
export function storableForm(value: unknown): unknown {
  return prepare(value, new Walk(), 0);
}

/** MessagePack of `value`; throws UnstorableValueError before encoding anything it cannot keep. */
export function encodeValue(value: unknown): Uint8Array {
  return packr.pack(storableForm(value));
}

/** MessagePack of the array `[...header, value]`: `header` holds numbers, strings and null (not walked). */
export function encodeWithHeader(header: readonly unknown[], value: unknown): Uint8Array {
  return packr.pack([...header, storableForm(value)]);
}

/** A fresh copy of what `encodeValue` wrote. */
export function decodeValue(bytes: Uint8Array): unknown {
  // From a Buffer, msgpackr's copies of `bin` data are Buffers (as stored); from a plain Uint8Array they would not be.
  return unpackWhole(unpackr, Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
}
