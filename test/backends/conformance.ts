/**
 * The backend conformance suite: run unchanged against every backend (built-in or custom). A backend's test file
 * calls `testBackendConformance({ ... })` with a factory; service-specific tests live beside it.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BackendError,
  hasAdd,
  hasBatch,
  hasCounter,
  hasInvalidation,
  hasLocks,
  hasTtl,
  isClosable,
  type Backend,
} from '../../src/backends/types.js';

export interface UnreachableBackend {
  backend: Backend;
  /** The backend's configured bound (connect/command timeout, retries included) in ms. */
  boundMs: number;
  cleanup?: () => Promise<void>;
}

export type Capability = 'batch' | 'ttl' | 'locks' | 'add' | 'counter' | 'invalidation';

const GUARDS: Record<Capability, (backend: Backend) => boolean> = {
  batch: hasBatch,
  ttl: hasTtl,
  locks: hasLocks,
  add: hasAdd,
  counter: hasCounter,
  invalidation: hasInvalidation,
};

export interface ConformanceTarget {
  name: string;
  /** The optional capabilities the backend offers: checked against what it has, then each one tested. */
  capabilities: Capability[];
  /** The `backend_type` healthCheck must report. */
  backendType: string;
  /** A fresh backend. The suite closes it (if closable) at the end. */
  create(): Backend | Promise<Backend>;
  /**
   * Backends whose server cannot answer: each entry is a failure mode (`stopped`: server killed after a successful
   * call, `refused`: nothing listening, `blackhole`: accepts and never answers). Omit for backends without a server.
   */
  unreachable?: Record<string, () => Promise<UnreachableBackend>>;
  /** A second instance over the same store as `backend` (another process's view of it). @default create() */
  sameStore?(backend: Backend): Backend | Promise<Backend>;
  /** Behaviours a backend truly cannot offer, each with its reason (printed in the test name). */
  optOut?: {
    /** delete() cannot tell whether the key existed (e.g. an idempotent HTTP DELETE). */
    deleteReportsMissing?: string;
  };
}

/** Declares the test only when `condition` holds: a capability a backend lacks is not a skipped test. */
const declareIf = (condition: boolean): typeof it => (condition ? it : ((() => {}) as unknown as typeof it));

const bytes = (text: string) => new TextEncoder().encode(text);
const uniq = (label: string) => `ck-conf:${label}:${randomUUID()}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function expectBytes(actual: Uint8Array | null, expected: Uint8Array): void {
  expect(actual).not.toBeNull();
  expect(actual).toBeInstanceOf(Uint8Array);
  expect(actual!.byteLength).toBe(expected.byteLength);
  expect(Buffer.compare(Buffer.from(actual!), Buffer.from(expected))).toBe(0);
}

export function testBackendConformance(target: ConformanceTarget): void {
  describe(`${target.name}: backend conformance`, () => {
    let backend: Backend;

    beforeAll(async () => {
      backend = await target.create();
      // Warm the connection so connect latency never eats a TTL.
      await backend.exists(uniq('warm'));
    });

    afterAll(async () => {
      if (isClosable(backend)) await backend.close();
    });

    it('returns null for a missing key', async () => {
      expect(await backend.get(uniq('missing'))).toBeNull();
      expect(await backend.exists(uniq('missing'))).toBe(false);
    });

    it('round-trips all 256 byte values exactly', async () => {
      const key = uniq('all-bytes');
      const value = Uint8Array.from({ length: 256 * 4 }, (_, i) => i % 256);
      await backend.set(key, value);
      expectBytes(await backend.get(key), value);
    });

    it('round-trips an empty value as empty bytes, not a miss', async () => {
      const key = uniq('empty');
      await backend.set(key, new Uint8Array(0));
      const got = await backend.get(key);
      expectBytes(got, new Uint8Array(0));
      expect(await backend.exists(key)).toBe(true);
    });

    it('round-trips a 5 MB value', async () => {
      const key = uniq('large');
      const value = new Uint8Array(randomBytes(5 * 1024 * 1024));
      await backend.set(key, value, 60);
      expectBytes(await backend.get(key), value);
    });

    it('keeps unicode, whitespace and 500-character keys distinct', async () => {
      const base = uniq('keys');
      const long = `${base}:${'x'.repeat(500)}`;
      const keys = [
        `${base}:ключ/🔑/键`,
        `${base}:with space`,
        `${base}:with\ttab\nand newline`,
        `${base}:with space `,
        long,
        `${long.slice(0, -1)}y`,
        `${base}:\u0000nul`,
      ];
      await Promise.all(keys.map((key, i) => backend.set(key, bytes(`value-${i}`))));
      for (const [i, key] of keys.entries()) expectBytes(await backend.get(key), bytes(`value-${i}`));
    });

    it('overwrites a value and does not leak the caller buffer', async () => {
      const key = uniq('overwrite');
      const first = bytes('first');
      await backend.set(key, first);
      first[0] = 0x58; // mutating the caller's buffer after set must not change what is stored
      await backend.set(key, bytes('second value'));
      expectBytes(await backend.get(key), bytes('second value'));
      const got = await backend.get(key);
      got![0] = 0x58; // mutating what get returned must not change the stored value
      expectBytes(await backend.get(key), bytes('second value'));
    });

    it('expires entries after their TTL and keeps entries without one', async () => {
      const expiring = uniq('ttl');
      const forever = uniq('no-ttl');
      const cleared = uniq('ttl-cleared');
      await backend.set(expiring, bytes('short'), 1);
      await backend.set(forever, bytes('long'));
      await backend.set(cleared, bytes('a'), 1);
      await backend.set(cleared, bytes('b')); // a set without TTL replaces the expiry
      expectBytes(await backend.get(expiring), bytes('short'));
      await sleep(2_200);
      expect(await backend.get(expiring)).toBeNull();
      expect(await backend.exists(expiring)).toBe(false);
      expectBytes(await backend.get(forever), bytes('long'));
      expectBytes(await backend.get(cleared), bytes('b'));
    });

    it('reports delete and exists results', async () => {
      const key = uniq('delete');
      await backend.set(key, bytes('v'));
      expect(await backend.exists(key)).toBe(true);
      expect(await backend.delete(key)).toBe(true);
      expect(await backend.get(key)).toBeNull();
      expect(await backend.exists(key)).toBe(false);
    });

    // An opted-out behaviour is not declared as a test at all (its reason stays in the target).
    declareIf(target.optOut?.deleteReportsMissing === undefined)('delete of a missing key returns false', async () => {
      expect(await backend.delete(uniq('never-set'))).toBe(false);
    });

    it('reports health with latency_ms and backend_type', async () => {
      const [healthy, details] = await backend.healthCheck();
      expect(healthy).toBe(true);
      expect(typeof details.latency_ms).toBe('number');
      expect(details.latency_ms).toBeGreaterThanOrEqual(0);
      expect(details.backend_type).toBe(target.backendType);
    });

    it('handles 1,000 concurrent operations correctly', async () => {
      const base = uniq('concurrent');
      const n = 1_000;
      await Promise.all(Array.from({ length: n }, (_, i) => backend.set(`${base}:${i}`, bytes(`v${i}`), 120)));
      const results = await Promise.all(
        Array.from({ length: n }, (_, i) => (i % 2 === 0 ? backend.get(`${base}:${i}`) : backend.exists(`${base}:${i}`))),
      );
      results.forEach((result, i) => {
        if (i % 2 === 0) expectBytes(result as Uint8Array, bytes(`v${i}`));
        else expect(result).toBe(true);
      });
      const deleted = await Promise.all(Array.from({ length: n }, (_, i) => backend.delete(`${base}:${i}`)));
      expect(deleted.every(Boolean)).toBe(true);
    });

    it(`offers exactly the declared capabilities (${target.capabilities.join(', ') || 'none'})`, () => {
      const offered = (Object.keys(GUARDS) as Capability[]).filter((name) => GUARDS[name](backend));
      expect(offered.sort()).toEqual([...target.capabilities].sort());
    });

    const offers = (name: Capability) => target.capabilities.includes(name);
    if (target.capabilities.length > 0) describe('optional capabilities', () => {
      declareIf(offers('batch'))('batch get/set', async () => {
        if (!hasBatch(backend)) throw new Error('declared but missing');
        const base = uniq('batch');
        await backend.setMany([
          { key: `${base}:a`, value: bytes('A') },
          { key: `${base}:b`, value: bytes('B'), ttlSeconds: 60 },
        ]);
        const got = await backend.getMany([`${base}:a`, `${base}:missing`, `${base}:b`]);
        expect(got).toHaveLength(3);
        expectBytes(got[0]!, bytes('A'));
        expect(got[1]).toBeNull();
        expectBytes(got[2]!, bytes('B'));
        expect(await backend.getMany([])).toEqual([]);
      });

      declareIf(offers('ttl'))('TTL inspection', async () => {
        if (!hasTtl(backend)) throw new Error('declared but missing');
        const key = uniq('ttl-inspect');
        const forever = uniq('ttl-forever');
        await backend.set(key, bytes('v'), 100);
        await backend.set(forever, bytes('f'));
        const entry = await backend.getWithTtl(key);
        expectBytes(entry!.value, bytes('v'));
        expect(entry!.ttlMs).toBeGreaterThan(90_000);
        expect(entry!.ttlMs).toBeLessThanOrEqual(100_000);
        expect((await backend.getWithTtl(forever))!.ttlMs).toBeNull();
        expect(await backend.getWithTtl(uniq('absent'))).toBeNull();
        const ttl = await backend.getTtl(key);
        expect(ttl).toBeGreaterThan(90);
        expect(ttl).toBeLessThanOrEqual(100);
        expect(await backend.getTtl(forever)).toBeNull();
        expect(await backend.getTtl(uniq('absent'))).toBeUndefined();
        expect(await backend.refreshTtl(key, 1000)).toBe(true);
        expect(await backend.getTtl(key)).toBeGreaterThan(990);
        expect(await backend.refreshTtl(uniq('absent'), 10)).toBe(false);
      });

      declareIf(offers('locks'))('locks with a lease', async () => {
        if (!hasLocks(backend)) throw new Error('declared but missing');
        const key = uniq('lock');
        const token = await backend.acquireLock(key, 1_000);
        expect(typeof token).toBe('string');
        expect(await backend.acquireLock(key, 1_000)).toBeNull();
        expect(await backend.releaseLock(key, 'not-the-token')).toBe(false);
        expect(await backend.releaseLock(key, token!)).toBe(true);
        const second = await backend.acquireLock(key, 500);
        expect(second).not.toBeNull();
        await sleep(1_100); // the holder "crashed": its lease expires
        const third = await backend.acquireLock(key, 500);
        expect(third).not.toBeNull();
        expect(third).not.toBe(second);
        // The lock does not collide with a value of the same key.
        await backend.set(key, bytes('value'));
        expectBytes(await backend.get(key), bytes('value'));
      });

      declareIf(offers('add'))('set-if-absent', async () => {
        if (!hasAdd(backend)) throw new Error('declared but missing');
        const key = uniq('add');
        expect(await backend.add(key, bytes('first'), 60)).toBe(true);
        expect(await backend.add(key, bytes('second'), 60)).toBe(false);
        expectBytes(await backend.get(key), bytes('first'));
      });

      declareIf(offers('counter'))('an atomic counter, shared with another instance, readable with get', async () => {
        if (!hasCounter(backend)) throw new Error('declared but missing');
        const other = target.sameStore ? await target.sameStore(backend) : await target.create();
        if (!hasCounter(other)) throw new Error('second instance lacks the capability');
        const key = uniq('counter');
        expect(await backend.incr(key, 1_000)).toBe(1_000); // created holding `initial`
        expect(await other.incr(key, 5)).toBe(1_001); // `initial` only applies to a missing counter
        // Concurrent increments from two instances: every one gets its own value, none is lost.
        const both = [backend, other] as const;
        const values = await Promise.all(Array.from({ length: 40 }, (_, i) => both[i % 2]!.incr(key, 0)));
        expect(new Set(values).size).toBe(40);
        expect(Math.min(...values)).toBe(1_002);
        expect(Math.max(...values)).toBe(1_041);
        expect(new TextDecoder().decode((await other.get(key))!)).toBe('1041');
        // A value that is not a counter is refused, never silently replaced.
        const plain = uniq('not-a-counter');
        await backend.set(plain, bytes('hello'));
        const refused = await backend.incr(plain, 0).then(() => null, (error: unknown) => error);
        expect(BackendError.is(refused)).toBe(true);
        expectBytes(await backend.get(plain), bytes('hello'));
        if (isClosable(other) && other !== backend) await other.close();
      });

      declareIf(offers('invalidation'))('invalidation messages reach another instance', async () => {
        if (!hasInvalidation(backend)) throw new Error('declared but missing');
        const other = await target.create();
        if (!hasInvalidation(other)) throw new Error('second instance lacks the capability');
        const channel = uniq('channel');
        const received: string[] = [];
        const sub = await other.subscribe(channel, (m) => received.push(m), () => {});
        await backend.publish(channel, 'hello ✓');
        const deadline = Date.now() + 5_000;
        while (received.length === 0 && Date.now() < deadline) await sleep(10);
        expect(received).toEqual(['hello ✓']);
        await sub.unsubscribe();
        if (isClosable(other)) await other.close();
      });
    });

    for (const [mode, make] of Object.entries(target.unreachable ?? {})) {
      it(`fails fast with a classified BackendError when the server is ${mode}`, async () => {
        const { backend: down, boundMs, cleanup } = await make();
        try {
          const ops: [string, () => Promise<unknown>][] = [
            ['get', () => down.get('k')],
            ['set', () => down.set('k', bytes('v'), 10)],
            ['delete', () => down.delete('k')],
            ['exists', () => down.exists('k')],
          ];
          for (const [name, op] of ops) {
            const started = Date.now();
            const error = await op().then(
              () => new Error(`${name} resolved against a ${mode} server`),
              (e: unknown) => e,
            );
            const elapsed = Date.now() - started;
            expect(BackendError.is(error), `${name}: ${String(error)}`).toBe(true);
            expect(['transient', 'timeout']).toContain((error as BackendError).kind);
            // A bound, not a benchmark: the call must end within its configured timeout plus scheduling slack.
            expect(elapsed, `${name} took ${elapsed} ms`).toBeLessThan(boundMs + 1_500);
          }
          const started = Date.now();
          const [healthy, details] = await down.healthCheck();
          expect(healthy).toBe(false);
          expect(details.backend_type).toBe(target.backendType);
          expect(typeof details.latency_ms).toBe('number');
          expect(Date.now() - started).toBeLessThan(boundMs + 1_500);
        } finally {
          if (isClosable(down)) await down.close();
          await cleanup?.();
        }
      });
    }
  });
}
