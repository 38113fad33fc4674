/**
 * The shared read rule (store/fresh-read.ts) over two "instances" (two tiered caches, each with its own L1) on one
 * real redis-server: an L1 copy that is not fresh is dropped and the L2 read, then judged again, once.
 */
import { describe, expect, it } from 'vitest';
import { lookupFresh } from '../../src/store/fresh-read.js';
import { TieredCache } from '../../src/store/tiered.js';
import { redisFixture } from '../support/redis-fixture.js';

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array) => new TextDecoder().decode(value);
/** A verdict per value: what a tag store or a record's times would say of it. */
type Verdict = 'fresh' | 'stale' | 'expired';

describe('lookupFresh on Redis', () => {
  const redis = redisFixture();
  const pair = () => {
    const backend = redis.backend();
    return [new TieredCache({ backend }), new TieredCache({ backend: redis.backend() })] as const;
  };
  const judging = (verdicts: Record<string, Verdict>) => {
    const judged: string[] = [];
    const judge = (hit: { value: Uint8Array; source: string }) => {
      judged.push(`${hit.source}:${text(hit.value)}`);
      return verdicts[text(hit.value)] ?? 'fresh';
    };
    return { judge, judged };
  };

  it('an L1 copy that is not fresh: dropped, the newer L2 copy another instance wrote is read, judged and kept', async () => {
    const [a, b] = pair();
    await a.set('k', bytes('old'), 60);
    await b.set('k', bytes('new'), 60); // A's L1 still holds 'old' (no bus here)
    const { judge, judged } = judging({ old: 'stale' });
    const read = await lookupFresh(a, 'k', judge);
    expect(read && { source: read.hit.source, value: text(read.hit.value), verdict: read.verdict }).toEqual({ source: 'l2', value: 'new', verdict: 'fresh' });
    expect(judged).toEqual(['l1:old', 'l2:new']);
    expect((await a.lookup('k'))?.source).toBe('l1'); // the L2 copy is now A's L1 copy
  });

  it('retries once: an L2 copy that is not fresh either is returned with its verdict', async () => {
    const [a] = pair();
    await a.set('k2', bytes('old'), 60);
    const { judge, judged } = judging({ old: 'expired' });
    const read = await lookupFresh(a, 'k2', judge);
    expect(read?.verdict).toBe('expired');
    expect(read?.hit.source).toBe('l2');
    expect(judged).toEqual(['l1:old', 'l2:old']);
  });

  it('a copy read from the L2 is not read again', async () => {
    const [a, b] = pair();
    await b.set('k3', bytes('stale one'), 60);
    const { judge, judged } = judging({ 'stale one': 'stale' });
    const read = await lookupFresh(a, 'k3', judge);
    expect(read?.verdict).toBe('stale');
    expect(judged).toEqual(['l2:stale one']);
  });

  it('an L1 copy that is not fresh and gone from the L2 is a miss', async () => {
    const [a, b] = pair();
    await a.set('k4', bytes('old'), 60);
    await b.delete('k4');
    const { judge } = judging({ old: 'stale' });
    expect(await lookupFresh(a, 'k4', judge)).toBeNull();
    expect(a.hasLocal('k4')).toBe(false);
  });

  it('without an L2 to ask (L1 only), the copy is kept and returned as judged', async () => {
    const alone = new TieredCache({ backend: null });
    await alone.set('k5', bytes('only copy'), 60);
    const { judge, judged } = judging({ 'only copy': 'stale' });
    const read = await lookupFresh(alone, 'k5', judge, false);
    expect(read?.verdict).toBe('stale');
    expect(judged).toEqual(['l1:only copy']);
    expect(alone.hasLocal('k5')).toBe(true);
  });

  it('waits for a verdict that needs a read (tags), and takes one known at once', async () => {
    const [a, b] = pair();
    await a.set('k6', bytes('old'), 60);
    await b.set('k6', bytes('new'), 60);
    const read = await lookupFresh(a, 'k6', (hit) => Promise.resolve<Verdict>(text(hit.value) === 'old' ? 'stale' : 'fresh'));
    expect(read && text(read.hit.value)).toBe('new');
  });
});
