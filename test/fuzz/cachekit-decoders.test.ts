/**
 * Fuzz: the cachekit byte decoders (envelope, encrypted entry and interop frames, interop values) on random and
 * mutated inputs. Every input must end as a value, a miss or a clean Error.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { createEnvelopeFormat, lz4DecodeBlock, type EnvelopeFormat } from '../../src/wire/envelope.js';
import { Encryptor } from '../../src/wire/encryption.js';
import { decodeInteropValue, encodeInteropValue } from '../../src/wire/interop.js';
import { interopValues, toLegacyEnvelope } from '../support/bytes-fixtures.js';
import { cleanOutcome, mutated, newStats, prefixed, randomBytes, report, type FuzzStats } from './support.js';

let codec: EnvelopeFormat;
let nativeCodec: EnvelopeFormat;
beforeAll(async () => {
  codec = await createEnvelopeFormat();
  nativeCodec = await createEnvelopeFormat({ compressThresholdBytes: 0, nativeDecodeMinBytes: 0 });
});

function check(stats: FuzzStats, arb: fc.Arbitrary<Uint8Array>, numRuns: number, decode: (input: Uint8Array) => unknown): void {
  fc.assert(
    fc.property(arb, (input) => cleanOutcome(stats, decode, input)),
    { numRuns },
  );
}

const envelopeInput: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 1024 }),
  // Repetitive data, so blocks carry matches (and overlapping ones) worth mutating.
  fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 8 }), fc.integer({ min: 1, max: 3000 })).map(([unit, n]) => Buffer.alloc(n, unit)),
);

const interopValue = interopValues(6);

const ctx = { tenantId: 'tenant', cacheKey: 'ns:op:key' };

describe('fuzz: cachekit decoders', () => {
  it('envelope decode: 25,000 random and mutated inputs', () => {
    const stats = newStats();
    const started = performance.now();
    const decode = (input: Uint8Array) => codec.decode(input).data;
    check(stats, randomBytes, 5000, decode);
    check(stats, prefixed(Uint8Array.of(0x94, 0xc4)), 2000, decode);
    check(
      stats,
      mutated(envelopeInput, (d) => codec.encode(d)),
      10_000,
      decode,
    );
    check(
      stats,
      mutated(envelopeInput, (d) => nativeCodec.encode(d)),
      3000,
      (input) => nativeCodec.decode(input).data,
    );
    check(
      stats,
      mutated(envelopeInput, (d) => toLegacyEnvelope(codec.encode(d))),
      5000,
      decode,
    );
    report('envelope', stats, started);
    expect(stats.runs).toBe(25_000);
    expect(stats.values).toBeGreaterThan(0);
    expect(stats.errors).toBeGreaterThan(20_000);
  });

  it('LZ4 block decode: 5,000 random blocks', () => {
    const stats = newStats();
    const started = performance.now();
    check(
      stats,
      fc.tuple(randomBytes, fc.nat({ max: 100_000 })).map(([b, n]) => Buffer.concat([Buffer.of(n & 0xff, (n >> 8) & 0xff, n >> 16), b])),
      5000,
      (input) => lz4DecodeBlock(input.subarray(3), input[0]! | (input[1]! << 8) | (input[2]! << 16)),
    );
    report('lz4 block', stats, started);
    expect(stats.runs).toBe(5000);
  });

  it('encrypted entry and interop frames: 15,000 random and mutated inputs', () => {
    const enc = new Encryptor({ masterKey: 'ab'.repeat(32), previousMasterKeys: ['cd'.repeat(32)] });
    const old = new Encryptor({ masterKey: 'cd'.repeat(32) });
    const stats = newStats();
    const started = performance.now();
    const decrypt = (input: Uint8Array) => enc.decrypt(input, ctx);
    check(stats, randomBytes, 3000, decrypt);
    check(stats, prefixed(enc.encrypt(Buffer.alloc(0), ctx).subarray(0, 19)), 2000, decrypt);
    check(
      stats,
      mutated(fc.uint8Array({ maxLength: 300 }), (p) => enc.encrypt(p, ctx)),
      4000,
      decrypt,
    );
    check(
      stats,
      mutated(fc.uint8Array({ maxLength: 300 }), (p) => old.encrypt(p, ctx)),
      2000,
      decrypt,
    );
    check(stats, randomBytes, 2000, (input) => enc.decryptInterop(input, ctx.tenantId, ctx.cacheKey));
    check(
      stats,
      mutated(fc.uint8Array({ maxLength: 300 }), (p) => enc.encryptInterop(p, ctx.tenantId, ctx.cacheKey)),
      2000,
      (input) => enc.decryptInterop(input, ctx.tenantId, ctx.cacheKey),
    );
    report('encryption', stats, started);
    expect(stats.runs).toBe(15_000);
  });

  it('interop value decode: 25,000 random and mutated inputs', () => {
    const stats = newStats();
    const started = performance.now();
    check(stats, randomBytes, 8000, decodeInteropValue);
    // Container headers with lying counts: array32 / map32 / str32 / bin32 followed by little.
    check(
      stats,
      fc.constantFrom(0xdd, 0xdf, 0xdb, 0xc6, 0xdc, 0xde).chain((t) => prefixed(Uint8Array.of(t))),
      2000,
      decodeInteropValue,
    );
    check(stats, mutated(interopValue, encodeInteropValue), 15_000, decodeInteropValue);
    report('interop value', stats, started);
    expect(stats.runs).toBe(25_000);
    expect(stats.values).toBeGreaterThan(1000);
  });

  it('a deep nesting bomb is a clean error, not a stack overflow', () => {
    expect(() => decodeInteropValue(Buffer.alloc(100_000, 0x91))).toThrow(/nesting/);
    expect(() => decodeInteropValue(Buffer.concat([Buffer.alloc(50_000, 0x81), Buffer.of(0xa0)]))).toThrow(/nesting/);
  });
});
