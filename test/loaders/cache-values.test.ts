/**
 * `cache(fn)` values and arguments beyond JSON (issue 11): a hit returns what the miss returned, type for type; what
 * cannot come back as it is is refused loudly (returned, not stored, one warning naming the function and the path,
 * `onError`); arguments of those types key deterministically, and arguments without a key reject before the function
 * runs. The property version over every backend is cached-function-roundtrip.test.ts; key vectors loader-key.test.ts.
 */
import { Packr } from 'msgpackr';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../src/backends/memory.js';
import { cache } from '../../src/loaders/cache.js';
import { Encryptor } from '../../src/wire/encryption.js';
import { createEnvelopeFormat } from '../../src/wire/envelope.js';
import { setLogger } from '../../src/shared/log.js';
import { anotherInstance } from '../support/instances.js';
import { difference } from '../support/same-value.js';

const warnings: string[] = [];
function captureWarnings(): void {
  warnings.length = 0;
  setLogger({ info: () => {}, warn: (message) => warnings.push(message) });
}
afterEach(() => setLogger(null));

const issueValue = () => ({
  d: new Date(0),
  m: new Map<unknown, unknown>([
    [1, 2],
    ['k', { deep: new Set(['x']) }],
  ]),
  s: new Set([1, 'two', 3n]),
  big: 10n,
  u: new URL('http://a/path?q=1#f'),
  numbers: [-0, NaN, Infinity, -Infinity, 0.1],
  // biome-ignore lint/suspicious/noSparseArray: a sparse array is one of the shapes under test
  holes: [1, , 3],
  undef: undefined,
  bytes: { u8: Uint8Array.of(1, 2), f64: Float64Array.of(-0, 1.5), big64: BigInt64Array.of(-5n), raw: Uint8Array.of(9, 8).buffer, buf: Buffer.from('hi') },
});

describe('cache(fn) values: a hit returns what the miss returned', () => {
  it("the issue's example, from the L1 and from the L2 (another instance): Map stays a Map, Set a Set, URL a URL", async () => {
    const backend = new MemoryBackend();
    let calls = 0;
    const load = async function loadExample(id: number) {
      calls++;
      return { id, ...issueValue() };
    };
    const f = cache(load, { backend });
    const miss = await f.detailed(1);
    expect(miss.status).toBe('miss');
    const fromL1 = await f.detailed(1);
    const fromL2 = await cache(load, { backend: anotherInstance(backend), l1: false }).detailed(1);
    expect([fromL1.status, fromL2.status, calls]).toEqual(['l1', 'l2', 1]);
    for (const hit of [fromL1.value, fromL2.value]) {
      expect(difference(miss.value, hit)).toBeNull();
      expect(hit.m.get(1)).toBe(2);
      expect(hit.s.has(3n)).toBe(true);
      expect(hit.u.searchParams.get('q')).toBe('1');
      expect(Object.is(hit.numbers[0], -0)).toBe(true);
      expect(1 in hit.holes).toBe(false);
      expect('undef' in hit).toBe(true);
    }
  });

  it('every caller gets its own copy: mutating a Map, Set, typed array or Buffer from a hit never reaches the next hit', async () => {
    const f = cache(
      async function mutable() {
        return issueValue();
      },
      { backend: new MemoryBackend() },
    );
    await f();
    const first = await f.detailed();
    first.value.m.set(1, 'changed');
    first.value.s.clear();
    first.value.bytes.u8[0] = 99;
    first.value.bytes.buf[0] = 0;
    new Uint8Array(first.value.bytes.raw)[0] = 0;
    const second = await f.detailed();
    expect([first.status, second.status]).toEqual(['l1', 'l1']);
    expect(difference(issueValue(), second.value)).toBeNull();
    // A Buffer alone (it used to come back as a view of the L1's own bytes).
    const g = cache(
      async function bufferOnly() {
        return { buf: Buffer.from('hello') };
      },
      { backend: new MemoryBackend() },
    );
    await g();
    (await g()).buf.fill(0);
    expect((await g()).buf.toString()).toBe('hello');
  });

  it('edges: a long string with a lone surrogate, 500 levels of nesting, a sparse array of a million slots', async () => {
    const deep: Record<string, unknown> = {};
    let node = deep;
    for (let i = 0; i < 500; i++) node = (node.next = { i }) as Record<string, unknown>;
    const sparse: unknown[] = [];
    sparse[999_999] = 'last';
    const value = { text: `${'x'.repeat(200_000)}\ud800`, deep, sparse };
    const f = cache(
      async function edges() {
        return value;
      },
      { backend: new MemoryBackend(), l1: false },
    );
    await f();
    const hit = await f.detailed();
    expect(hit.status).toBe('l2');
    expect(difference(value, hit.value)).toBeNull();
  });

  it('cache.secure values too (decrypted on every hit)', async () => {
    const backend = new MemoryBackend();
    const load = async function secretExample() {
      return issueValue();
    };
    const f = cache.secure(load, { backend, encryption: { masterKey: 'ef'.repeat(32) } });
    const miss = await f();
    expect(difference(miss, await f())).toBeNull();
    expect(
      difference(miss, await cache.secure(load, { backend: anotherInstance(backend), l1: false, encryption: { masterKey: 'ef'.repeat(32) } })()),
    ).toBeNull();
  });
});

describe('cache(fn) values that cannot come back as they are: refused loudly, never changed', () => {
  it('a function inside: the call returns the value, nothing is stored, one warning names the function and the path, onError gets it', async () => {
    captureWarnings();
    const backend = new MemoryBackend();
    const errors: { error: Error; operation: string; key: string | undefined }[] = [];
    let calls = 0;
    const render = () => 'x';
    const value = { items: [0, 1, 2, { render }] };
    const f = cache(
      async function listWidgets() {
        calls++;
        return value;
      },
      { backend, onError: (error, context) => errors.push({ error, operation: context.operation, key: context.key }) },
    );
    expect(await f()).toBe(value);
    expect(await backend.get(f.keyFor())).toBeNull();
    expect(await f()).toBe(value);
    expect(calls).toBe(2);
    expect(warnings).toHaveLength(1); // rate limited: the second refusal is not logged again
    expect(warnings[0]).toContain('listWidgets');
    expect(warnings[0]).toContain('result.items[3].render is a function');
    expect(errors).toHaveLength(2);
    expect(errors[0]!.error.name).toBe('UnstorableValueError');
    expect(errors[0]!.error).toMatchObject({ path: 'result.items[3].render' });
    expect(errors[0]).toMatchObject({ operation: 'encode', key: f.keyFor() });
  });

  it.each([
    [
      'a class instance',
      () => ({
        owner: new (class User {
          name = 'ada';
        })(),
      }),
      'result.owner is an instance of User',
    ],
    ['an Error', () => [new Error('boom')], 'result[0] is an instance of Error'],
    ['a Promise', () => ({ later: Promise.resolve(1) }), 'result.later is an instance of Promise'],
    ['a RegExp', () => new Map([['re', /x/g]]), 'result<Map value 0> is an instance of RegExp'],
    ['a unique symbol', () => ({ tag: Symbol('local') }), 'result.tag is a symbol'],
    ['a WeakMap', () => ({ cache: new WeakMap() }), 'result.cache is an instance of WeakMap'],
    [
      'a cycle',
      () => {
        const node: Record<string, unknown> = { child: { name: 'c' } };
        (node.child as Record<string, unknown>).parent = node;
        return node;
      },
      'result.child.parent refers back to result (a cycle)',
    ],
    ['a Map subclass', () => ({ m: new (class Registry extends Map {})() }), 'result.m is an instance of Registry'],
    [
      'nesting deeper than 1000 levels',
      () => {
        const root: unknown[] = [];
        let node = root;
        for (let i = 0; i < 1001; i++) node.push((node = []));
        return root;
      },
      'is nested deeper than 1000 levels',
    ],
  ])('%s', async (_what, make, message) => {
    captureWarnings();
    const backend = new MemoryBackend();
    const errors: Error[] = [];
    const value = make();
    const f = cache(
      async function refused() {
        return value;
      },
      { backend, onError: (error) => errors.push(error) },
    );
    expect(await f()).toBe(value);
    expect(await backend.get(f.keyFor())).toBeNull();
    expect(errors.map((e) => e.message)).toEqual([expect.stringContaining(message)]);
    expect(warnings.join('\n')).toContain(message);
  });
});

describe('cache(fn) records written before values were typed', () => {
  it('are a quiet miss (the function runs, its value overwrites them), never the changed value they hold', async () => {
    captureWarnings();
    const backend = new MemoryBackend();
    let calls = 0;
    const f = cache(
      async function legacy() {
        calls++;
        return { m: new Map([[1, 2]]) };
      },
      { backend, l1: false },
    );
    // What the previous release wrote for this value: the Map had become an object.
    const now = Date.now();
    const old = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, variableMapSize: true }).pack({
      e: now + 60_000,
      v: { m: { 1: 2 } },
      s: now,
      f: now + 60_000,
    });
    await backend.set(f.keyFor(), (await createEnvelopeFormat()).encode(old, 'msgpack'), 60);
    const first = await f.detailed();
    expect([first.status, calls]).toEqual(['miss', 1]);
    expect(first.value.m).toBeInstanceOf(Map);
    expect((await f.detailed()).status).toBe('l2');
    expect(warnings).toEqual([]);
  });

  it('sealed (cache.secure) ones too', async () => {
    const backend = new MemoryBackend();
    const masterKey = '5a'.repeat(32);
    let calls = 0;
    const f = cache.secure(
      async function legacySealed() {
        calls++;
        return { s: new Set([1]) };
      },
      { backend, l1: false, encryption: { masterKey } },
    );
    const now = Date.now();
    const old = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, variableMapSize: true }).pack({
      e: now + 60_000,
      v: { s: [1] },
      s: now,
      f: now + 60_000,
    });
    const sealed = new Encryptor({ masterKey }).encrypt((await createEnvelopeFormat()).encode(old, 'msgpack'), {
      tenantId: 'default',
      cacheKey: f.keyFor(),
      format: 'msgpack',
      compressed: true,
    });
    await backend.set(f.keyFor(), sealed, 60);
    const first = await f.detailed();
    expect([first.status, calls]).toEqual(['miss', 1]);
    expect(first.value.s).toBeInstanceOf(Set);
  });
});

describe('cache(fn) arguments beyond JSON', () => {
  const f = cache(
    async function posts(..._args: unknown[]) {
      return 1;
    },
    { backend: null },
  );

  it('Date, Map, Set, bigint, URL, typed arrays and nested objects key deterministically', () => {
    const args = () => [
      new Date(5),
      new Map<string, unknown>([
        ['a', 1],
        ['b', [2n]],
      ]),
      new Set([1, 2]),
      10n,
      new URL('http://x/'),
      Float32Array.of(1.5),
      { since: new Date(0), tags: new Set(['x']) },
    ];
    expect(f.keyFor(...args())).toBe(f.keyFor(...args()));
    expect(f.keyFor(new Date(5))).not.toBe(f.keyFor(new Date(6)));
    expect(f.keyFor(new Date(NaN))).toBe(f.keyFor(new Date('invalid')));
  });

  it('order does not matter in objects, Maps and Sets; undefined properties are like absent ones', () => {
    expect(f.keyFor({ a: 1, b: 2 })).toBe(f.keyFor({ b: 2, a: 1 }));
    expect(
      f.keyFor(
        new Map<unknown, unknown>([
          ['a', 1],
          [2, 'b'],
        ]),
      ),
    ).toBe(
      f.keyFor(
        new Map<unknown, unknown>([
          [2, 'b'],
          ['a', 1],
        ]),
      ),
    );
    expect(f.keyFor(new Set(['x', 1, { y: 2 }]))).toBe(f.keyFor(new Set([{ y: 2 }, 1, 'x'])));
    expect(f.keyFor({ a: 1, b: undefined })).toBe(f.keyFor({ a: 1 }));
    expect(f.keyFor([1, 2])).not.toBe(f.keyFor([2, 1]));
  });

  it('types never collide: 1, 1n, "1", [1], Set {1}, Map vs object, Date vs its time, Uint8Array vs Int8Array', () => {
    const keys = [
      1,
      1n,
      '1',
      [1],
      new Set([1]),
      { a: 1 },
      new Map([['a', 1]]),
      new Date(1),
      Uint8Array.of(1),
      Int8Array.of(1),
      Uint8Array.of(1).buffer,
      new URL('http://a/'),
      'http://a/',
      null,
      [undefined],
    ].map((arg) => f.keyFor(arg));
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('a call with a Date argument runs once, then hits (it used to throw "a Date has no canonical MessagePack form")', async () => {
    let calls = 0;
    const since = cache(
      async function postsSince(date: Date) {
        calls++;
        return [date.toISOString()];
      },
      { backend: new MemoryBackend() },
    );
    expect(await since(new Date(0))).toEqual(['1970-01-01T00:00:00.000Z']);
    expect((await since.detailed(new Date(0))).status).toBe('l1');
    expect(calls).toBe(1);
  });

  it('an argument without a key rejects the call before the function runs, naming its position', async () => {
    let calls = 0;
    const g = cache(
      async function search(_q: string, _options: unknown) {
        calls++;
        return [];
      },
      { backend: new MemoryBackend() },
    );
    const rejected = g('x', { format: () => 'y' });
    await expect(rejected).rejects.toThrow(/cache\(search\): args\[1\]\.format is a function/);
    await expect(g('x', { format: () => 'y' })).rejects.toMatchObject({ name: 'ArgumentKeyError', path: 'args[1].format' });
    await expect(g('x', new (class Query {})())).rejects.toThrow(/args\[1\] is an instance of Query.*pass `key`/);
    await expect(g.detailed('x', Symbol('s'))).rejects.toThrow(/args\[1\] is a symbol/);
    expect(calls).toBe(0);
    expect(() => g.keyFor('x', () => 1)).toThrow(/args\[1\] is a function/);
    // With an explicit key the arguments are not hashed.
    const keyed = cache(
      async function render(_fn: () => string) {
        calls++;
        return 1;
      },
      { backend: null, key: 'render' },
    );
    expect(await keyed(() => 'y')).toBe(1);
  });
});
