/**
 * Fuzz: the `cache(fn)` record decoder past the envelope's checksum (as if a writer with access computed a valid one):
 * the length check every L2 read makes (assertBounded), then msgpackr with its native extensions and our extension
 * 0x4B, on random and mutated records. Every input ends as
 * a value or a clean Error (the store turns it into a miss); never another throw, a crash or a hang.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
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

  it('a record with bytes after a value holding a 2^32 - 1 slot array: a clean Error at once (msgpackr quoted it and never ended)', () => {
    // Found by the property above (seed 929031458): it hung a CI run, 3.5 GB and counting.
    const input = Buffer.from(
      '95cb427d1a94a2000000cb426d1a94a2000000cb427d1a94a200000091a3746167d44b009205950601d44b00920692ce73f2' +
        '4754c7037403f6ca02d44b00920495c3a22d31d44b009205970601d4730094c7017403c400c7197408853bc8bbe4c4478fea' +
        'e2ddb6fe668239fb816097adae017600d20dcd49cb0178c70974069fefaabd530edd3f03cb433a7ae46317f1d705c7017410' +
        '069fefaabd530edd3f03cb433a7ae46317f1d705c7017410a4f091ababd44b009201be687474703a2f2f3575396673326c34' +
        '35772e79632f235f3f77314e374149',
      'hex',
    );
    assertBounded(input);
    expect(() => decodeRecord(input)).toThrow(/corrupt MessagePack: 70 bytes after the value/);
  });
});
