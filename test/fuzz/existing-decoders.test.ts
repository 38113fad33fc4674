/**
 * Fuzz: the decoders that were already in place, the handler entry decoder (handlerEntrySerializer().decode: frame, inflate,
 * msgpackr, field layout) and the File backend header parser, on random and mutated inputs. Every input must end as
 * a value, a miss (null) or a clean Error (which the tiered cache turns into a miss).
 */
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeEntry, parseHeader } from '../../src/backends/file-format.js';
import { handlerEntrySerializer, type HandlerEntry } from '../../src/wire/next-entry.js';
import type { IncrementalCacheValue } from '../../src/wire/next-types.js';
import { cleanOutcome, mutated, newStats, prefixed, randomBytes, report, type FuzzStats } from './support.js';

/** The frame's CRC-32 recomputed over whatever body a mutation left (when the frame still claims one). */
function withValidChecksum(input: Uint8Array): Uint8Array {
  const out = Buffer.from(input);
  if (out.length >= 7 && out[0] === 0xc4 && out[1] === 0x4b && out[2]! & 0x04) out.writeUInt32BE(crc32(out.subarray(7)) >>> 0, 3);
  return out;
}

function check(stats: FuzzStats, arb: fc.Arbitrary<Uint8Array>, numRuns: number, decode: (input: Uint8Array) => unknown): void {
  fc.assert(
    fc.property(arb, (input) => cleanOutcome(stats, decode, input)),
    { numRuns },
  );
}

const text = fc.string({ maxLength: 60 });
const bytes = fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b));
const headers = fc.dictionary(fc.constantFrom('content-type', 'x-next-cache-tags', 'etag'), text, { maxKeys: 3 });

const nextValue: fc.Arbitrary<IncrementalCacheValue> = fc.oneof(
  fc.record({
    kind: fc.constant('APP_PAGE' as const),
    html: text,
    rscData: bytes,
    headers,
    status: fc.constant(200),
    segmentData: fc.array(fc.tuple(text, bytes), { maxLength: 3 }).map((e) => new Map(e)),
  }),
  fc.record({ kind: fc.constant('APP_ROUTE' as const), body: bytes, status: fc.constantFrom(200, 404), headers }),
  fc.record({ kind: fc.constant('PAGES' as const), html: text, pageData: fc.jsonValue({ maxDepth: 2 }) }),
  fc.record({
    kind: fc.constant('FETCH' as const),
    data: fc.record({
      headers,
      body: fc.oneof(
        text,
        bytes.map((b) => b.toString('base64')),
      ),
      url: fc.webUrl(),
      status: fc.constant(200),
    }),
    tags: fc.array(text, { maxLength: 3 }),
    revalidate: fc.nat({ max: 86_400 }),
  }),
  fc.record({ kind: fc.constant('REDIRECT' as const), props: fc.jsonValue({ maxDepth: 2 }) }),
  fc.record({ kind: fc.constant('IMAGE' as const), etag: text, upstreamEtag: text, buffer: bytes, extension: fc.constantFrom('png', 'webp') }),
);

const handlerEntry: fc.Arbitrary<HandlerEntry> = fc.record({
  lastModified: fc.nat(),
  tags: fc.array(text, { maxLength: 4 }),
  value: fc.option(nextValue, { nil: null }),
});

describe('fuzz: existing decoders', () => {
  it('handler entry decoder: 32,000 random and mutated inputs (plain and deflated frames)', () => {
    const plain = handlerEntrySerializer();
    const deflating = handlerEntrySerializer({ thresholdBytes: 0 });
    const stats = newStats();
    const started = performance.now();
    check(stats, randomBytes, 6000, plain.decode);
    // Past the magic, into the flags/inflate and msgpackr paths.
    check(
      stats,
      fc.constantFrom(0, 1).chain((flags) => prefixed(Uint8Array.of(0xc4, 0x4b, flags))),
      4000,
      plain.decode,
    );
    check(
      stats,
      mutated(handlerEntry, (e) => plain.encode(e)),
      8000,
      plain.decode,
    );
    check(
      stats,
      mutated(handlerEntry, (e) => deflating.encode(e)),
      4000,
      plain.decode,
    );
    // The checksum stops the mutations above at the door; a hostile writer recomputes it: the decoders behind it.
    check(stats, mutated(handlerEntry, (e) => plain.encode(e)).map(withValidChecksum), 6000, plain.decode);
    check(stats, mutated(handlerEntry, (e) => deflating.encode(e)).map(withValidChecksum), 4000, plain.decode);
    report('handler entry', stats, started);
    expect(stats.runs).toBe(32_000);
    expect(stats.values).toBeGreaterThan(0);
  });

  it('File backend header parser: 15,000 random and mutated inputs', () => {
    const stats = newStats();
    const started = performance.now();
    const parse = (input: Uint8Array) => parseHeader(Buffer.from(input.buffer, input.byteOffset, input.byteLength));
    check(stats, randomBytes, 5000, parse);
    check(stats, prefixed(Uint8Array.of(0x43, 0x4b, 1, 0)), 3000, parse);
    check(
      stats,
      mutated(fc.tuple(fc.uint8Array({ maxLength: 64 }), fc.nat()), ([value, expiry]) => encodeEntry(value, expiry)),
      7000,
      (input) => {
        const expiry = parse(input);
        // A header it accepts yields a whole non-negative number of seconds.
        if (expiry !== null) expect(Number.isInteger(expiry) && expiry >= 0).toBe(true);
        return expiry;
      },
    );
    report('file header', stats, started);
    expect(stats.runs).toBe(15_000);
    expect(stats.misses).toBeGreaterThan(0);
  });
});
