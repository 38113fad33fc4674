import { describe, expect, it } from 'vitest';
import { verdictOf } from '../../src/store/tags.js';

describe('tag verdicts', () => {
  const now = 1_000_000;
  it('expires entries written before or in the same millisecond as a past expiry', () => {
    expect(verdictOf([{ expired: 900 }], 899, now)).toBe('expired');
    expect(verdictOf([{ expired: 900 }], 900, now)).toBe('expired');
    expect(verdictOf([{ expired: 900 }], 901, now)).toBe('fresh');
  });

  it('waits for a future expiry, meanwhile stale', () => {
    expect(verdictOf([{ stale: 900, expired: now + 1 }], 899, now)).toBe('stale');
    expect(verdictOf([{ stale: 900, expired: now + 1 }], 899, now + 1)).toBe('expired');
  });

  it('marks stale entries written before or at the stale time, and the worst state wins', () => {
    expect(verdictOf([{ stale: 900 }], 900, now)).toBe('stale');
    expect(verdictOf([{ stale: 900 }], 901, now)).toBe('fresh');
    expect(verdictOf([undefined, { stale: 950 }, { expired: 960 }], 940, now)).toBe('expired');
    expect(verdictOf([], 1, now)).toBe('fresh');
  });
});
