/**
 * cache(fn) over a backend without messages (the File backend here): a call whose key is not in the L1 reads the L2
 * beside the request's epoch reads (the loaders' and, for tagged entries, the stack's), not after them: an L2 hit is
 * one read deep, not three (issue 14). And a change the epoch read reports still keeps the old value out of the L1.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { FileBackend } from '../../src/backends/file.js';
import { cache } from '../../src/loaders/cache.js';
import { CacheStack } from '../../src/stack/stack.js';
import { requestBegan } from '../../src/store/epoch.js';

/** A FileBackend whose reads of keys `held` picks (epoch reads by default) wait while `gate` is set, logging every read. */
class GatedFile extends FileBackend {
  gate: Promise<void> | null = null;
  held: (key: string) => boolean = (key) => key.endsWith(':epoch');
  readonly reads: string[] = [];
  override async get(key: string): Promise<Uint8Array | null> {
    this.reads.push(key);
    if (this.gate && this.held(key)) await this.gate;
    return super.get(key);
  }
}

let dir: string;
const stacks: CacheStack[] = [];
let n = 0;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ck-overlap-'));
});
afterEach(async () => {
  await Promise.all(stacks.splice(0).map((stack) => stack.close()));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Instance A (writes) and B (reads through a GatedFile), on one directory, as two processes would be. */
function pair() {
  const namespace = `overlap-${++n}`;
  const gated = new GatedFile({ cacheDir: dir });
  const a = new CacheStack({ backend: new FileBackend({ cacheDir: dir }), namespace, deploymentId: 'd' });
  const b = new CacheStack({ backend: gated, namespace, deploymentId: 'd' });
  stacks.push(a, b);
  let calls = 0;
  const load = async (id: number) => ({ id, call: ++calls });
  return { a, b, gated, load, calls: () => calls };
}

/**
 * `cache(load, options)` on A and on B: A fills key 1, then B's first request (key 0) sets its epoch baseline, so that
 * B's next request reads key 1 from the L2, a key it never read.
 */
async function filled(options: { name: string; ttl: number; tags?: readonly string[] }) {
  const p = pair();
  const onA = cache(p.load, { ...options, stack: p.a });
  const onB = cache(p.load, { ...options, stack: p.b });
  await onA(1);
  requestBegan();
  await onB(0); // B's first request sets its epoch baseline
  return { ...p, onA, onB };
}

/** Holds B's epoch reads until `open()`. */
function hold(gated: GatedFile): { open: () => void } {
  let open!: () => void;
  gated.gate = new Promise<void>((resolve) => (open = resolve));
  return {
    open: () => {
      gated.gate = null;
      open();
    },
  };
}

describe('cache(fn): an L2 hit over the epoch (File backend)', () => {
  it('reads the entry while the epoch reads of the request are still running', async () => {
    const { gated, onB } = await filled({ name: 'overlap', ttl: 300 });

    requestBegan();
    const epoch = hold(gated);
    const entryKey = onB.keyFor(1);
    const result = onB.detailed(1);
    // The entry is read without waiting for the loaders' epoch read (held).
    await vi.waitFor(() => expect(gated.reads).toContain(entryKey), { timeout: 500 });
    expect(gated.reads.some((key) => key.endsWith('fn:invalidate:epoch'))).toBe(true);
    epoch.open();
    expect(await result).toMatchObject({ value: { id: 1, call: 1 }, status: 'l2' });
    requestBegan();
    expect(await onB.detailed(1)).toMatchObject({ value: { id: 1, call: 1 }, status: 'l1' }); // kept in the L1
  });

  it("a tagged entry: the stack's epoch read (its verdict) starts beside the entry read, not after it", async () => {
    const { b, gated, onB } = await filled({ name: 'overlapTagged', ttl: 300, tags: ['posts'] });

    requestBegan();
    const epoch = hold(gated);
    const entryKey = onB.keyFor(1);
    const result = onB.detailed(1);
    const stackEpoch = `${b.keyPrefix}${b.namespace}:invalidate:epoch`;
    await vi.waitFor(() => expect(gated.reads).toEqual(expect.arrayContaining([entryKey, stackEpoch])), { timeout: 500 });
    epoch.open();
    expect(await result).toMatchObject({ value: { id: 1, call: 1 }, status: 'l2' });
  });

  it('a tagged entry read for the first time: its tag states are read beside the entry, not after it', async () => {
    const { a, b, gated, load } = pair();
    const options = { name: 'overlapStates', ttl: 300, tags: ['posts'] } as const;
    const onA = cache(load, { ...options, stack: a });
    const onB = cache(load, { ...options, stack: b });
    await onA(1);
    requestBegan();
    await cache(load, { name: 'overlapWarm', ttl: 300, stack: b })(0); // B's epoch baselines, no tag read

    requestBegan();
    const entryKey = onB.keyFor(1);
    gated.held = (key) => key === entryKey;
    const entry = hold(gated);
    const result = onB.detailed(1);
    // While the entry read is held, the tag's states are read (one batched read of its stale and expired keys).
    await vi.waitFor(() => expect(gated.reads.filter((key) => key.endsWith(':posts'))).toHaveLength(2), { timeout: 500 });
    entry.open();
    expect(await result).toMatchObject({ value: { id: 1, call: 1 }, status: 'l2' });
  });

  it('a change the overlapping epoch read reports keeps the value read beside it out of the L1', async () => {
    const { b, gated, calls, onA, onB } = await filled({ name: 'overlapChanged', ttl: 300 });

    requestBegan();
    const epoch = hold(gated);
    const first = onB.detailed(1);
    await vi.waitFor(() => expect(gated.reads).toContain(onB.keyFor(1)), { timeout: 500 });
    expect(await first).toMatchObject({ value: { call: 1 }, status: 'l2' });
    // A deletes the entry before B's epoch read gets to the counter: B's copy must not outlive this request.
    await onA.invalidate(1);
    epoch.open();
    await vi.waitFor(() => expect(b.bus.epoch).not.toBeNull());
    requestBegan();
    expect(await onB.detailed(1)).toMatchObject({ status: 'miss' });
    expect(calls()).toBe(3); // A's fill, B's call 0, B's recompute of 1
  });
});

describe('cache(fn): the record envelope', () => {
  afterEach(() => {
    vi.doUnmock('../../src/wire/envelope.js');
    vi.resetModules();
  });

  it('starts loading when a cached function is defined, not in its first call', async () => {
    vi.resetModules();
    const created = vi.fn();
    vi.doMock('../../src/wire/envelope.js', async (importOriginal) => {
      const original = await importOriginal<typeof import('../../src/wire/envelope.js')>();
      return {
        ...original,
        createEnvelopeFormat: (...args: Parameters<typeof original.createEnvelopeFormat>) => {
          created();
          return original.createEnvelopeFormat(...args);
        },
      };
    });
    const fresh = await import('../../src/loaders/cache.js');
    const { MemoryBackend } = await import('../../src/backends/memory.js');
    const load = fresh.cache(async () => 1, { name: 'preloaded', backend: new MemoryBackend() });
    expect(created).toHaveBeenCalledTimes(1);
    expect(await load()).toBe(1);
    expect(created).toHaveBeenCalledTimes(1);
  });
});
