import fc from 'fast-check';
import { Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { blake2b } from '@noble/hashes/blake2.js';
import { canonicalArgs, decodeInteropValue, encodeInteropValue, interopKey, InteropDateTime, InteropError } from '../../src/wire/interop.js';
import { CanonicalMsgpackError, encodeCanonical, Float64 } from '../../src/wire/msgpack-canonical.js';
import { interopValues } from '../support/bytes-fixtures.js';
import { hex, loadOurVectors, loadVectors, toHex, untag } from './vectors.js';

const vectors = loadVectors('interop-mode.json');
const ours = loadOurVectors();
const cacheKeys = loadVectors('cache-keys.json');

describe('interop key vectors', () => {
  it('covers every key vector', () => expect(vectors.key_vectors.length).toBeGreaterThanOrEqual(33));
  for (const v of vectors.key_vectors) {
    it(v.name, () => {
      const args = untag(v.args) as unknown[];
      expect(toHex(canonicalArgs(args))).toBe(v.canonical_args_hex);
      expect(interopKey(v.namespace, v.operation, args)).toBe(v.expected_key);
      expect(v.expected_key.endsWith(v.args_hash)).toBe(true);
    });
  }
});

describe('interop value vectors', () => {
  for (const v of vectors.value_vectors) {
    it(v.name, () => {
      const value = untag(v.value);
      expect(toHex(encodeInteropValue(value))).toBe(v.canonical_msgpack_hex);
      const decoded = decodeInteropValue(hex(v.canonical_msgpack_hex));
      // Decoding loses only the float/int distinction JS does not have: re-encode with Float64 where the vector had one.
      const plain = JSON.parse(JSON.stringify(v.value, (_k, x) => (x && typeof x === 'object' && '$float' in x ? Number(x.$float) : x)));
      expect(decoded).toEqual(plain);
    });
  }
});

describe('interop error vectors', () => {
  for (const v of vectors.error_vectors) {
    it(v.name, () => {
      const run = () => interopKey(v.namespace ?? 't', v.operation ?? 'op', untag(v.args) as unknown[]);
      expect(run).toThrow(Error);
      try {
        run();
      } catch (error) {
        expect(error instanceof InteropError || error instanceof CanonicalMsgpackError).toBe(true);
      }
    });
  }
});

describe('our interop vectors (cachekit-ts 0.2 / cachekit-py 0.26 rules the shared vectors do not pin)', () => {
  for (const v of ours.key_vectors) {
    it(`key: ${v.name}`, () => {
      const args = untag(v.args) as unknown[];
      expect(toHex(canonicalArgs(args))).toBe(v.canonical_args_hex);
      expect(interopKey(v.namespace, v.operation, args)).toBe(v.expected_key);
    });
  }
  for (const v of ours.value_vectors) {
    it(`value: ${v.name}`, () => {
      const value = untag(v.value);
      expect(toHex(encodeInteropValue(value))).toBe(v.canonical_msgpack_hex);
      // The sign of -0 survives the round trip (toEqual tells -0 from +0 via Object.is).
      expect(decodeInteropValue(hex(v.canonical_msgpack_hex))).toEqual(value);
    });
  }
  for (const v of ours.error_vectors) {
    it(`error: ${v.name}`, () => {
      const run = () => interopKey(v.namespace ?? 't', v.operation ?? 'op', untag(v.args) as unknown[]);
      expect(run).toThrow(v.path ? CanonicalMsgpackError : InteropError);
      // The message says what to do and where: the argument path, or the segment and its value.
      if (v.path) expect(run).toThrow(new RegExp(`BigInt.*\\(at ${v.path.replace(/[[\].]/g, '\\$&')}\\)$`));
      else expect(run).toThrow(new RegExp(`interop ${v.option.split('.')[1]} .*${v.namespace === 'ns' || v.namespace === 'nsapi' ? 'reserved' : '\\.\\.'}`));
    });
  }
  for (const v of ours.value_error_vectors) {
    it(`value error: ${v.name}`, () => {
      expect(() => encodeInteropValue(untag(v.value))).toThrow(CanonicalMsgpackError);
      expect(() => encodeInteropValue(untag(v.value))).toThrow(`(at ${v.path})`);
    });
  }
  it('a BigInt or a Float64 is the way past 2^53, as the error says', () => {
    expect(toHex(canonicalArgs([2n ** 53n]))).toBe('91cf0020000000000000');
    expect(toHex(canonicalArgs([new Float64(2 ** 53)]))).toBe('91cf0020000000000000');
    expect(toHex(encodeInteropValue(new Float64(2 ** 60)))).toBe('cb43b0000000000000');
    // Past the uint64 range a double is a float64 on every side (the shared float_large_integral_out_of_range).
    expect(toHex(canonicalArgs([2 ** 64]))).toBe('91cb43f0000000000000');
  });
  it('errors inside sets and under non-identifier keys name their place', () => {
    expect(() => canonicalArgs([new Set([1, 2 ** 60])])).toThrow('(at args[0][<set element 1>])');
    expect(() => encodeInteropValue({ 'a b': [() => 1] })).toThrow('(at value["a b"][0])');
  });
});

describe('canonical MessagePack edges', () => {
  it('collapses integral floats in arguments only', () => {
    expect(toHex(encodeCanonical([new Float64(2)], 'args'))).toBe('9102');
    expect(toHex(encodeCanonical(new Float64(2), 'value'))).toBe('cb4000000000000000');
    expect(toHex(encodeCanonical(2 ** 60, 'args'))).toBe('cf1000000000000000');
  });
  it('round-trips integers beyond 2^53 as bigint and refuses out-of-range ones', () => {
    expect(decodeInteropValue(encodeInteropValue(2n ** 64n - 1n))).toBe(2n ** 64n - 1n);
    expect(decodeInteropValue(encodeInteropValue(-(2n ** 63n)))).toBe(-(2n ** 63n));
    expect(() => encodeInteropValue(2n ** 64n)).toThrow(CanonicalMsgpackError);
    expect(() => encodeInteropValue(NaN)).toThrow(CanonicalMsgpackError);
  });
  it('refuses values without a canonical form', () => {
    for (const bad of [undefined, () => 1, Symbol('s'), new (class X {})(), '\ud800', { a: undefined }, new Map([[1, 2]])]) {
      expect(() => encodeInteropValue(bad)).toThrow(CanonicalMsgpackError);
    }
    const cyclic: unknown[] = [];
    cyclic.push(cyclic);
    expect(() => encodeInteropValue(cyclic)).toThrow(CanonicalMsgpackError);
  });
  it('keeps a leading byte-order mark in strings and map keys (TextDecoder drops it by default)', () => {
    const value = { '\uFEFF': '\uFEFFtext', plain: 'x' };
    expect(decodeInteropValue(encodeInteropValue(value))).toEqual(value);
  });

  it('decodes strictly: ext types, NaN, trailing bytes, lying lengths and bad UTF-8 are errors', () => {
    for (const bad of ['d40100', 'c1', 'cb7ff8000000000000', 'cb7ff0000000000000', '0000', 'dd7fffffff', 'a2c328', 'c6ffffffff', 'df0000ffff']) {
      expect(() => decodeInteropValue(hex(bad)), bad).toThrow(CanonicalMsgpackError);
    }
    expect(decodeInteropValue(hex('81a95f5f70726f746f5f5f01'))).toEqual(JSON.parse('{"__proto__":1}'));
    expect(Object.getPrototypeOf(decodeInteropValue(hex('81a95f5f70726f746f5f5f01')))).toBe(Object.prototype);
  });
  it('decodes a map with a non-string key (Python may write one) as a Map, keeping every entry in order', () => {
    // {"a": 1, "b": 2, 1: 3}
    const map = decodeInteropValue(hex('83a16101a1620201 03'.replace(/ /g, '')));
    expect(map).toBeInstanceOf(Map);
    expect([...(map as Map<unknown, unknown>).entries()]).toEqual([
      ['a', 1],
      ['b', 2],
      [1, 3],
    ]);
    expect(decodeInteropValue(hex('82a16101a16202'))).toEqual({ a: 1, b: 2 });
  });
  it('writes datetimes as timestamps in arguments and sentinel maps in values', () => {
    const d = InteropDateTime.fromISO('2024-01-01T12:30:45.123456+00:00');
    expect(decodeInteropValue(encodeInteropValue(d))).toEqual({ __datetime__: true, value: '2024-01-01T12:30:45.123456+00:00' });
    expect(InteropDateTime.fromISO('1969-12-31T23:59:59.123456+00:00').toISO()).toBe('1969-12-31T23:59:59.123456+00:00');
    expect(toHex(canonicalArgs([new Date('2024-01-01T00:00:00Z')]))).toBe('91ce65920080');
    for (const bad of [
      '2024-02-30T00:00:00Z',
      '2024-13-01T00:00:00Z',
      '2024-01-01T24:00:00Z',
      '2024-01-01T00:60:00Z',
      '2024-01-01T00:00:00+24:00',
      '2024-01-01',
    ]) {
      expect(() => InteropDateTime.fromISO(bad), bad).toThrow(InteropError);
    }
    expect(InteropDateTime.fromISO('2024-02-29T23:59:59.9999999-00:30').toISO()).toBe('2024-03-01T00:29:59.999999+00:00');
  });
});

describe('cache-keys.json args hash (cachekit-py default keys)', () => {
  // Only the args-hash portion is cross-SDK: blake2b-256 of msgpack([args, kwargs map with sorted keys]);
  // the same canonical encoder in the value profile (3.0 stays a float64) reproduces it.
  for (const v of cacheKeys.vectors) {
    it(v.name, () => {
      const args = (v.args as unknown[]).map((a) => (v.name === 'multiple_args' && a === 3 ? new Float64(3) : a));
      const bytes = encodeCanonical([args, v.kwargs], 'value');
      const hash = Buffer.from(blake2b(bytes, { dkLen: 32 })).toString('hex');
      expect(v.expected_key).toContain(`:args:${hash}:`);
    });
  }
});

describe('canonical MessagePack properties', () => {
  const value = interopValues(20);

  it('decode(encode(v)) re-encodes to the same bytes (floats kept as Float64)', () => {
    fc.assert(
      fc.property(value, (v) => {
        const bytes = encodeInteropValue(v);
        expect(toHex(encodeInteropValue(decodeInteropValue(bytes, { floats: 'Float64' })))).toBe(toHex(bytes));
      }),
      { numRuns: 2000 },
    );
  });

  it('is canonical regardless of key insertion order, and msgpackr reads the same value', () => {
    const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'bigint' });
    fc.assert(
      fc.property(fc.dictionary(fc.string({ unit: 'binary', maxLength: 6 }), fc.integer(), { maxKeys: 12 }), (obj) => {
        const reversed = Object.fromEntries(Object.entries(obj).reverse());
        const bytes = encodeInteropValue(obj);
        expect(toHex(encodeInteropValue(reversed))).toBe(toHex(bytes));
        expect(unpackr.unpack(bytes)).toEqual(decodeInteropValue(bytes));
        expect(unpackr.unpack(bytes)).toEqual(obj);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('decoder allocation', () => {
  it('nested containers claiming the whole input allocate only what they decode', () => {
    // 200 nested array32 headers, each declaring as many elements as bytes remain, then garbage.
    const parts: Buffer[] = [];
    const total = 200 * 5 + 100_000;
    for (let i = 0; i < 200; i++) {
      const h = Buffer.alloc(5);
      h[0] = 0xdd;
      h.writeUInt32BE(total - (i + 1) * 5, 1);
      parts.push(h);
    }
    parts.push(Buffer.alloc(100_000, 0xc1));
    global.gc?.();
    const before = process.memoryUsage().heapUsed;
    expect(() => decodeInteropValue(Buffer.concat(parts))).toThrow(CanonicalMsgpackError);
    // Preallocating would take 200 x 100k slots (160 MB); decoding allocates next to nothing.
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(50 * 1024 * 1024);
  });
});
