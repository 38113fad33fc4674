/**
 * Fuzz: the `cache(fn)` record decoder past the envelope's checksum (as if a writer with access computed a valid one):
 * the length check every L2 read makes (assertBounded), then msgpackr with its native extensions and our extension
 * 0x4B, on random and mutated records. Every input ends as
 * a value or a clean Error (the store turns it into a miss); never another throw, a crash or a hang.
 */
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { assertBounded } from '../../src/wire/frame.js';
import { decodeRecord, encodeRecord } from '../../src/store/record-store.js';
import { storableValue } from '../support/storable-values.js';
import { cleanOutcome, mutated, newStats, prefixed, randomBytes, report } from './support.js';

const RUNS = 3000;
const record = storableValue.map((v) => encodeRecord({ e: 2e12, s: 1e12, f: 2e12, t: ['tag'], v }));

describe('fuzz: cache(fn) record decoder', () => {
  it(`${RUNS * 3} random, record-prefixed and mutated records: a value or a clean Error`, () => {
    const stats = newStats();
    const started = performance.now();
    // 0x95 0xcb ...: past the array header and the expiry, into the fields and the value.
    const inputs = fc.oneof(
      randomBytes,
      prefixed(Uint8Array.of(0x95, 0xcb, 0x42, 0x7d, 0x1a, 0x94, 0xa0, 0x00, 0x00, 0x00)),
      mutated(
        record.map((b) => b),
        (b) => b,
      ),
    );
    fc.assert(
      fc.property(inputs, (input) =>
        cleanOutcome(
          stats,
          (bytes) => {
            assertBounded(bytes);
            return decodeRecord(bytes);
          },
          input,
        ),
      ),
      { numRuns: RUNS * 3 },
    );
    report('cache(fn) records', stats, started);
  });
});
