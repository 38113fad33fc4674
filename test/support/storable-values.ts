/**
 * fast-check arbitraries of the values `cache(fn)` promises to return from a hit as the miss returned them: every
 * type React Server Components pass from server to client (Date, Map, Set, bigint, typed arrays, ArrayBuffer,
 * `undefined`, `-0`, `NaN`, `±Infinity`, holes, registered symbols, null-prototype objects) plus URL, DataView and
 * Buffer, nested in each other, with awkward strings (lone surrogates) and keys (`__proto__`, numeric ones).
 */
import fc from 'fast-check';

const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((unit) => String.fromCharCode(unit));
const unit = fc.oneof({ weight: 6, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }) }, { weight: 1, arbitrary: loneSurrogate });
export const awkwardString = fc.string({ unit, maxLength: 8 });
const key = fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('__proto__', 'constructor', 'toString', '0', '7', '-1', '01', 'a b', ''), awkwardString);

export const leaf: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(undefined, null, true, false, -0, 0, NaN, Infinity, -Infinity, Number.MAX_VALUE, Number.MIN_VALUE),
  fc.double(),
  fc.integer(),
  fc.maxSafeInteger(),
  fc.bigInt(),
  fc.bigInt({ min: -(2n ** 200n), max: 2n ** 200n }),
  awkwardString,
  fc.date({ noInvalidDate: false }),
  fc.webUrl({ withQueryParameters: true, withFragments: true }).map((url) => new URL(url)),
  fc.int8Array({ maxLength: 4 }),
  fc.uint8Array({ maxLength: 4 }),
  fc.uint8ClampedArray({ maxLength: 4 }),
  fc.int16Array({ maxLength: 4 }),
  fc.uint16Array({ maxLength: 4 }),
  fc.int32Array({ maxLength: 4 }),
  fc.uint32Array({ maxLength: 4 }),
  fc.float32Array({ maxLength: 4 }),
  fc.float64Array({ maxLength: 4 }),
  fc.bigInt64Array({ maxLength: 4 }),
  fc.bigUint64Array({ maxLength: 4 }),
  fc.uint8Array({ maxLength: 6 }).map((bytes) => bytes.buffer.slice(0)),
  fc.uint8Array({ maxLength: 6 }).map((bytes) => new DataView(bytes.buffer)),
  fc.uint8Array({ maxLength: 6 }).map((bytes) => Buffer.from(bytes)),
  fc.string({ maxLength: 4 }).map((name) => Symbol.for(name)),
);

/** Any storable value, nested up to a few levels. */
export const storableValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown; array: unknown; sparse: unknown; object: unknown; map: unknown; set: unknown }>(
  (tie) => ({
    value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('array'), tie('sparse'), tie('object'), tie('map'), tie('set')),
    array: fc.array(tie('value'), { maxLength: 5 }),
    sparse: fc.sparseArray(tie('value'), { maxLength: 6, maxNumElements: 3 }),
    object: fc.dictionary(key, tie('value'), { maxKeys: 5, noNullPrototype: false }),
    map: fc.array(fc.tuple(tie('value'), tie('value')), { maxLength: 4 }).map((entries) => new Map(entries)),
    set: fc.array(tie('value'), { maxLength: 4 }).map((items) => new Set(items)),
  }),
).value;
