/**
 * Fuzz: whatever bytes sit under a `cache(fn)` key (corrupt, foreign, truncated, hostile), a call answers: the stored
 * value when it is intact, else a miss and a fresh call. Never a rejection, never another value. Plain records
 * (envelope), sealed records (encryption) and interop values, each fed random and mutated stored bytes.
 */
import { randomBytes as cryptoRandom } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../src/backends/memory.js';
import { cache } from '../../src/loaders/cache.js';
import type { CacheOptions } from '../../src/loaders/types.js';
import { setLogger } from '../../src/shared/log.js';
import { mutated, randomBytes } from './support.js';

const RUNS = 2000;
// Every corrupt value is reported (rate limited); the reports are not what this test reads.
const silence = () => {
  setLogger({ info: () => {}, warn: () => {} });
  return () => setLogger(null);
};

/** `verified`: the stored form detects every change (checksum or AEAD); interop values are bare MessagePack, as Python writes them. */
async function fuzzStore(name: string, options: CacheOptions<[string]>, verified = true): Promise<{ intact: number; recomputed: number }> {
  const backend = new MemoryBackend();
  let calls = 0;
  const fresh = (id: string) => ({ id, rows: [1, 2, 3], note: `computed ${++calls}` });
  const f = cache(async (id: string) => fresh(id), { ...options, name, backend, l1: false, ttl: 60 });
  // Valid stored bytes to mutate: what the wrapper itself writes.
  const written = new Map<string, Uint8Array>();
  const validBytes = async (id: string) => {
    let bytes = written.get(id);
    if (!bytes) {
      await f(id);
      bytes = (await backend.get(f.keyFor(id)))!;
      written.set(id, bytes);
    }
    return bytes;
  };
  for (const id of ['a', 'b', 'c']) await validBytes(id);
  // Under each key: random bytes, or that key's own value mutated (values moved between keys are the encryption
  // tests' business: only sealed entries are bound to their key).
  const stored = fc.constantFrom('a', 'b', 'c').chain((id) =>
    fc.tuple(
      fc.constant(id),
      fc.oneof(
        randomBytes,
        mutated(fc.constant(id), (i) => written.get(i)!),
      ),
    ),
  );
  let intact = 0;
  let recomputed = 0;
  await fc.assert(
    fc.asyncProperty(stored, async ([id, bytes]) => {
      await backend.set(f.keyFor(id), bytes, 60);
      const before = calls;
      const result = await f.detailed(id);
      if (result.status === 'miss') {
        expect(calls).toBe(before + 1);
        expect(result.value.id).toBe(id);
        recomputed++;
      } else {
        if (verified) {
          // Served from the store: the value this wrapper wrote, never garbage.
          expect(result.value.id).toBe(id);
          expect(result.value.rows).toEqual([1, 2, 3]);
          expect(result.value.note).toMatch(/^computed \d+$/);
        }
        intact++;
      }
    }),
    { numRuns: RUNS },
  );
  return { intact, recomputed };
}

describe('fuzz: cache(fn) over corrupt stored bytes', () => {
  it(`plain records (envelope + MessagePack): ${RUNS} stored values, each intact or a miss`, async () => {
    const restore = silence();
    try {
      const { intact, recomputed } = await fuzzStore('fuzzPlain', {});
      expect(intact + recomputed).toBe(RUNS);
      expect(recomputed).toBeGreaterThan(RUNS / 2);
    } finally {
      restore();
    }
  });

  it(`sealed records (cache.secure): ${RUNS} stored values, each intact or a miss (fail-open)`, async () => {
    const restore = silence();
    try {
      const { intact, recomputed } = await fuzzStore('fuzzSealed', { encryption: { masterKey: cryptoRandom(32) } });
      expect(intact + recomputed).toBe(RUNS);
      // AES-GCM: any change to a sealed value is caught.
      expect(recomputed).toBeGreaterThan(RUNS * 0.9);
    } finally {
      restore();
    }
  });

  it(`interop values: ${RUNS} stored values, each served or a miss, never a failed call`, async () => {
    const restore = silence();
    try {
      // Interop values carry no checksum (cachekit's interop format): a mutation that still decodes is served as
      // what it decodes to; everything else is a miss. Either way the call answers.
      const { intact, recomputed } = await fuzzStore('fuzzInterop', { interop: { namespace: 'fuzz', operation: 'get' } }, false);
      expect(intact + recomputed).toBe(RUNS);
      expect(recomputed).toBeGreaterThan(0);
    } finally {
      restore();
    }
  });
});
