// biome-ignore-all lint/suspicious/noExplicitAny: vectors are JSON files of the Python SDK, read field by field
/**
 * Side by side on one real Redis with a Python peer (test/support/cachekit_peer.py: a cachekit-py interop service
 * written from the protocol text, stdlib only; cachekit-ts and cachekit-py themselves cannot be installed here):
 * keys, plain values and encrypted values cross both ways, for hundreds of fast-check cases. The peer reproduces
 * every shared interop vector on its own (first test), so agreeing with it is agreeing with the protocol.
 */
import { spawnSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cache } from '../../src/loaders/cache.js';
import { Float64, interopKey } from '../../src/wire/interop.js';
import { redisFixture } from '../support/redis-fixture.js';
import { loadOurVectors, loadVectors } from './vectors.js';

const PEER = fileURLToPath(new URL('../support/cachekit_peer.py', import.meta.url));
const SEED = Number(process.env.CROSSCHECK_SEED ?? Math.floor(Math.random() * 2 ** 31));
const MASTER = randomBytes(32).toString('hex');
const redis = redisFixture();

type Tagged = unknown;
type Result = { key?: string; canonical_hex?: string; hex?: string; value?: Tagged; key_hex?: string; error?: string };

function peer(cases: object[]): Result[] {
  const run = spawnSync('python3', [PEER], { input: JSON.stringify({ cases }), encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (run.status !== 0) throw new Error(`python peer failed: ${run.stderr}`);
  return (JSON.parse(run.stdout) as { results: Result[] }).results;
}

/** What both sides agree a value is: ints and floats by value (-0 kept apart), bytes as hex, sets sorted away. */
function view(tagged: Tagged): unknown {
  if (Array.isArray(tagged)) return tagged.map(view);
  if (tagged === null || typeof tagged !== 'object') return tagged;
  const [tag, raw] = Object.entries(tagged)[0] ?? [];
  if (Object.keys(tagged).length === 1 && tag?.startsWith('$')) {
    if (tag === '$int') return `int ${BigInt(raw as string)}`;
    if (tag === '$float') return Object.is(Number(raw), -0) ? 'float -0' : `float ${Number(raw)}`;
    if (tag === '$bytes') return `bytes ${raw as string}`;
  }
  return Object.fromEntries(Object.entries(tagged).map(([k, v]) => [k, view(v)]));
}

/** The view of what our decoder returns (JS cannot tell 2.0 from 2, so a JS integer is compared as an int). */
function jsView(value: unknown): unknown {
  if (typeof value === 'bigint') return `int ${value}`;
  if (typeof value === 'number') return Object.is(value, -0) ? 'float -0' : Number.isInteger(value) ? `int ${value}` : `float ${value}`;
  if (value instanceof Uint8Array) return `bytes ${Buffer.from(value).toString('hex')}`;
  if (Array.isArray(value)) return value.map(jsView);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsView(v)]));
  return value;
}

/** The peer's view with Python floats that are integral read as JS reads them (an int), -0 excepted. */
const asJsReads = (v: unknown): unknown =>
  typeof v === 'string' && /^float -?\d+$/.test(v) && v !== 'float -0'
    ? `int ${v.slice(6)}`
    : Array.isArray(v)
      ? v.map(asJsReads)
      : v && typeof v === 'object'
        ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, asJsReads(x)]))
        : v;

type Pair = [Tagged, unknown];
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** [tagged form for the peer, the JS value we pass], scalars first. */
function pairs(kind: 'args' | 'value'): fc.Arbitrary<Pair> {
  const scalar: fc.Arbitrary<Pair> = fc.oneof(
    fc.constant<Pair>([null, null]),
    fc.boolean().map((b): Pair => [b, b]),
    fc.integer().map((n): Pair => [{ $int: String(n) }, n]),
    fc.maxSafeInteger().map((n): Pair => [{ $int: String(n) }, n]),
    fc
      .bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n })
      .filter((n) => n > 2n ** 53n || n < -(2n ** 53n))
      .map((n): Pair => [{ $int: String(n) }, n]),
    fc
      .double({ noNaN: true, noDefaultInfinity: true })
      .filter((d) => !Number.isInteger(d))
      .map((d): Pair => [{ $float: String(d) }, d]),
    fc.constant<Pair>([{ $float: '-0.0' }, -0]),
    fc.integer().map((n): Pair => [{ $float: `${n}.0` }, new Float64(n)]),
    fc.string({ unit: 'binary', maxLength: 40 }).map((s): Pair => [s, s]),
    fc.uint8Array({ maxLength: 300 }).map((b): Pair => [{ $bytes: hex(b) }, b]),
  );
  const extra: fc.Arbitrary<Pair>[] =
    kind === 'args'
      ? [
          fc.date({ min: new Date(-2e12), max: new Date(4e12), noInvalidDate: true }).map((d): Pair => [{ $datetime: d.toISOString() }, d]),
          fc.array(scalar, { maxLength: 6 }).map((items): Pair => [{ $set: items.map((p) => p[0]) }, new Set(items.map((p) => p[1]))]),
        ]
      : [];
  return fc.letrec<{ v: Pair }>((tie) => ({
    v: fc.oneof(
      { depthSize: 'small' },
      scalar,
      ...extra,
      fc.array(tie('v'), { maxLength: 6 }).map((items): Pair => [items.map((p) => p[0]), items.map((p) => p[1])]),
      // No "$"-keys: a one-key map {"$int": ...} is a tag in the tagged JSON.
      fc
        .dictionary(
          fc.string({ unit: 'binary', maxLength: 8 }).filter((k) => !k.startsWith('$')),
          tie('v'),
          { maxKeys: 6 },
        )
        .map((d): Pair => [Object.fromEntries(Object.entries(d).map(([k, p]) => [k, p[0]])), Object.fromEntries(Object.entries(d).map(([k, p]) => [k, p[1]]))]),
    ),
  })).v;
}

const sample = <T>(arb: fc.Arbitrary<T>, n: number, offset: number) => fc.sample(arb, { numRuns: n, seed: SEED + offset });

function seal(key: Buffer, aad: Buffer, plain: Uint8Array): Buffer {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aad);
  return Buffer.concat([nonce, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
}

function open(key: Buffer, aad: Buffer, frame: Uint8Array): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, frame.subarray(0, 12));
  decipher.setAAD(aad);
  decipher.setAuthTag(frame.subarray(frame.length - 16));
  return Buffer.concat([decipher.update(frame.subarray(12, frame.length - 16)), decipher.final()]);
}

describe(`side by side with a Python interop peer on one Redis (seed ${SEED})`, () => {
  it('the peer reproduces the shared vectors and ours (it is a protocol implementation, not a copy of this one)', () => {
    const shared = loadVectors('interop-mode.json');
    const own = loadOurVectors();
    const jsnumber = (v: unknown): unknown =>
      JSON.parse(JSON.stringify(v), (_k, x) =>
        x && typeof x === 'object' && '$jsnumber' in x ? (x.$jsnumber === '-0' ? { $float: '-0.0' } : { $int: x.$jsnumber }) : x,
      );
    const keyVectors = [...shared.key_vectors, ...own.key_vectors];
    const results = peer([
      ...keyVectors.map((v: any) => ({ op: 'key', namespace: v.namespace, operation: v.operation, args: jsnumber(v.args) })),
      ...[...shared.value_vectors, ...own.value_vectors].map((v: any) => ({ op: 'encode', value: jsnumber(v.value) })),
      ...own.error_vectors.filter((v: any) => v.option).map((v: any) => ({ op: 'key', namespace: v.namespace, operation: v.operation, args: [] })),
    ]);
    const expected = [
      ...keyVectors.map((v: any) => v.expected_key),
      ...[...shared.value_vectors, ...own.value_vectors].map((v: any) => v.canonical_msgpack_hex),
      ...own.error_vectors.filter((v: any) => v.option).map(() => 'error'),
    ];
    expect(results.map((r) => r.key ?? r.hex ?? (r.error ? 'error' : r))).toEqual(expected);
  });

  it('keys: 400 argument lists hash to the same key on both sides', () => {
    const cases = sample(fc.array(pairs('args'), { maxLength: 4 }), 400, 1);
    const results = peer(cases.map((args) => ({ op: 'key', namespace: 'xc', operation: 'keys', args: args.map((p) => p[0]) })));
    for (const [i, args] of cases.entries())
      expect(
        interopKey(
          'xc',
          'keys',
          args.map((p) => p[1]),
        ),
        JSON.stringify(results[i]),
      ).toBe(results[i]!.key);
  });

  it('values written here are read by the peer: 300 cases, plain and encrypted', async () => {
    const backend = redis.backend();
    const values = sample(pairs('value'), 300, 2);
    const tenants = ['default', 'org-1', 'tenant ✓'];
    const plain = cache(async (i: number) => values[i]![1], { backend, ttl: 60, l1: false, interop: { namespace: 'xc', operation: 'ts_to_py' } });
    const sealed = cache(async (i: number) => values[i]![1], {
      backend,
      ttl: 60,
      l1: false,
      interop: { namespace: 'xc', operation: 'ts_to_py_sealed' },
      encryption: { masterKey: MASTER },
      tenant: (i: number) => tenants[i % 3]!,
    });
    const stored: { plain: Uint8Array; sealed: Uint8Array }[] = [];
    for (let i = 0; i < values.length; i++) {
      await plain(i);
      await sealed(i);
      stored.push({ plain: (await backend.get(plain.keyFor(i)))!, sealed: (await backend.get(sealed.keyFor(i)))! });
    }
    const keys = peer(
      values.flatMap((_, i) => [
        { op: 'key', namespace: 'xc', operation: 'ts_to_py', args: [{ $int: String(i) }] },
        { op: 'key', namespace: 'xc', operation: 'ts_to_py_sealed', args: [{ $int: String(i) }] },
      ]),
    );
    const crypto = peer([
      ...tenants.map((tenant) => ({ op: 'tenant_key', master_hex: MASTER, tenant })),
      ...values.map((_, i) => ({ op: 'aad', tenant: tenants[i % 3], cache_key: keys[2 * i + 1]!.key, format: 'msgpack', compressed: false })),
    ]);
    const opened = stored.map((s, i) => open(Buffer.from(crypto[i % 3]!.key_hex!, 'hex'), Buffer.from(crypto[3 + i]!.hex!, 'hex'), s.sealed));
    const read = peer([...stored.map((s) => ({ op: 'decode', hex: hex(s.plain) })), ...opened.map((b) => ({ op: 'decode', hex: hex(b) }))]);
    values.forEach(([tagged], i) => {
      expect(plain.keyFor(i)).toBe(keys[2 * i]!.key);
      expect(sealed.keyFor(i)).toBe(keys[2 * i + 1]!.key);
      expect(view(read[i]!.value), JSON.stringify(tagged)).toEqual(view(tagged));
      expect(view(read[values.length + i]!.value)).toEqual(view(tagged));
    });
  });

  it('values the peer wrote are read here, from L2, without a call: 300 cases, plain and encrypted', async () => {
    const backend = redis.backend();
    const values = sample(pairs('value'), 300, 3);
    const tenants = ['default', 'org-2'];
    const opts = { backend, ttl: 60, l1: false as const };
    const never = async (_i: number): Promise<unknown> => {
      throw new Error('the loader ran: the entry was not read');
    };
    const plain = cache(never, { ...opts, interop: { namespace: 'xc', operation: 'py_to_ts' } });
    const sealed = cache(never, {
      ...opts,
      interop: { namespace: 'xc', operation: 'py_to_ts_sealed' },
      encryption: { masterKey: MASTER },
      tenant: (i: number) => tenants[i % 2]!,
    });
    const encoded = peer([
      ...values.map(([tagged]) => ({ op: 'encode', value: tagged })),
      ...values.map((_, i) => ({ op: 'key', namespace: 'xc', operation: 'py_to_ts', args: [{ $int: String(i) }] })),
      ...values.map((_, i) => ({ op: 'key', namespace: 'xc', operation: 'py_to_ts_sealed', args: [{ $int: String(i) }] })),
      ...tenants.map((tenant) => ({ op: 'tenant_key', master_hex: MASTER, tenant })),
    ]);
    const n = values.length;
    const aads = peer(values.map((_, i) => ({ op: 'aad', tenant: tenants[i % 2], cache_key: encoded[2 * n + i]!.key, format: 'msgpack', compressed: false })));
    for (let i = 0; i < n; i++) {
      const bytes = Buffer.from(encoded[i]!.hex!, 'hex');
      await backend.set(encoded[n + i]!.key!, bytes, 60);
      await backend.set(encoded[2 * n + i]!.key!, seal(Buffer.from(encoded[3 * n + (i % 2)]!.key_hex!, 'hex'), Buffer.from(aads[i]!.hex!, 'hex'), bytes), 60);
    }
    for (let i = 0; i < n; i++) {
      const want = asJsReads(view(values[i]![0]));
      for (const f of [plain, sealed]) {
        const got = await f.detailed(i);
        expect(got.status, JSON.stringify(values[i]![0])).toBe('l2');
        expect(jsView(got.value), JSON.stringify(values[i]![0])).toEqual(want);
      }
    }
  });

  it('cache.secure on a prefixed Redis: the peer opens each entry with the AAD over prefix + key, never the bare key (100 keys)', async () => {
    const backend = redis.backend({ keyPrefix: 'app:' });
    const raw = redis.backend();
    const f = cache(
      async function note(i: number) {
        return `note ${i}`;
      },
      { backend, ttl: 60, l1: false, encryption: { masterKey: MASTER } },
    );
    const keys: string[] = [];
    for (let i = 0; i < 100; i++) {
      await f(i);
      keys.push(f.keyFor(i));
    }
    const results = peer([
      { op: 'tenant_key', master_hex: MASTER, tenant: 'default' },
      ...keys.flatMap((key) =>
        [`app:${key}`, key].map((cacheKey) => ({ op: 'aad', tenant: 'default', cache_key: cacheKey, format: 'msgpack', compressed: true })),
      ),
    ]);
    const tenantKey = Buffer.from(results[0]!.key_hex!, 'hex');
    for (const [i, key] of keys.entries()) {
      const frame = (await raw.get(`app:${key}`))!.subarray(19); // after this project's entry header (magic, version, fingerprint)
      expect(open(tenantKey, Buffer.from(results[1 + 2 * i]!.hex!, 'hex'), frame).length).toBeGreaterThan(0);
      expect(() => open(tenantKey, Buffer.from(results[2 + 2 * i]!.hex!, 'hex'), frame)).toThrow();
    }
  });
});
