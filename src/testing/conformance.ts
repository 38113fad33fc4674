/**
 * The backend conformance suite: run unchanged against every backend (built-in or custom). A backend's test file
 * calls `testBackendConformance({ ... }, { describe, it, beforeAll, afterAll })` with a factory and its test runner's
 * functions; assertions are node:assert, so any runner that fails a test on a thrown error works (vitest, jest,
 * node:test via `{ describe, it, beforeAll: before, afterAll: after }`). Service-specific tests live beside it.
 */
import { randomBytes, randomUUID } from '../shared/random.js';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { BackendError, hasAdd, hasBatch, hasCounter, hasInvalidation, hasLocks, hasTtl, isClosable, type Backend } from '../protocol/backend.js';

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

/** A test body: may be async; fails by throwing. */
type TestFn = () => unknown;

/**
 * The four functions the suite needs from a test runner, as vitest and jest name them. The hooks must accept an async
 * function and wait for it; tests run in declaration order inside one describe (the hooks set up one backend).
 */
export interface TestRunner {
  describe(name: string, body: () => void): unknown;
  it(name: string, body: TestFn, timeoutMs?: number): unknown;
  beforeAll(body: TestFn, timeoutMs?: number): unknown;
  afterAll(body: TestFn, timeoutMs?: number): unknown;
}

/** Per-test timeout passed to the runner: the TTL and lease tests sleep about 2 s, the unreachable ones wait out bounds. */
const TEST_TIMEOUT_MS = 30_000;
/** Hooks create and close a backend (a cluster may still be settling). */
const HOOK_TIMEOUT_MS = 60_000;

function compare(actual: unknown, op: '>' | '>=' | '<' | '<=', bound: number, message?: string): void {
  const ok = typeof actual === 'number' && (op === '>' ? actual > bound : op === '>=' ? actual >= bound : op === '<' ? actual < bound : actual <= bound);
  assert.ok(ok, message ?? `expected ${String(actual)} ${op} ${bound}`);
}

const bytes = (text: string) => new TextEncoder().encode(text);
const uniq = (label: string) => `ck-conf:${label}:${randomUUID()}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function expectBytes(actual: Uint8Array | null, expected: Uint8Array): void {
  assert.notEqual(actual, null);
  assert.ok(actual instanceof Uint8Array);
  assert.equal(actual!.byteLength, expected.byteLength);
  assert.equal(Buffer.compare(Buffer.from(actual!), Buffer.from(expected)), 0);
}

export function testBackendConformance(target: ConformanceTarget, runner: TestRunner): void {
  const { describe } = runner;
  const beforeAll = (body: TestFn) => runner.beforeAll(body, HOOK_TIMEOUT_MS);
  const afterAll = (body: TestFn) => runner.afterAll(body, HOOK_TIMEOUT_MS);
  const it = (name: string, body: TestFn) => runner.it(name, body, TEST_TIMEOUT_MS);
  /** Declares the test only when `condition` holds: a capability a backend lacks is not a skipped test. */
  const declareIf = (condition: boolean) => (condition ? it : (_name: string, _body: TestFn) => undefined);
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
      assert.equal(await backend.get(uniq('missing')), null);
      assert.equal(await backend.exists(uniq('missing')), false);
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
      assert.equal(await backend.exists(key), true);
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
      assert.equal(await backend.get(expiring), null);
      assert.equal(await backend.exists(expiring), false);
      expectBytes(await backend.get(forever), bytes('long'));
      expectBytes(await backend.get(cleared), bytes('b'));
    });

    it('reports delete and exists results', async () => {
      const key = uniq('delete');
      await backend.set(key, bytes('v'));
      assert.equal(await backend.exists(key), true);
      assert.equal(await backend.delete(key), true);
      assert.equal(await backend.get(key), null);
      assert.equal(await backend.exists(key), false);
    });

    // An opted-out behaviour is not declared as a test at all (its reason stays in the target).
    declareIf(target.optOut?.deleteReportsMissing === undefined)('delete of a missing key returns false', async () => {
      assert.equal(await backend.delete(uniq('never-set')), false);
    });

    it('reports health with latency_ms and backend_type', async () => {
      const [healthy, details] = await backend.healthCheck();
      assert.equal(healthy, true);
      assert.equal(typeof details.latency_ms, 'number');
      compare(details.latency_ms, '>=', 0);
      assert.equal(details.backend_type, target.backendType);
    });

    it('handles 1,000 concurrent operations correctly', async () => {
      const base = uniq('concurrent');
      const n = 1_000;
      await Promise.all(Array.from({ length: n }, (_, i) => backend.set(`${base}:${i}`, bytes(`v${i}`), 120)));
      const results = await Promise.all(Array.from({ length: n }, (_, i) => (i % 2 === 0 ? backend.get(`${base}:${i}`) : backend.exists(`${base}:${i}`))));
      results.forEach((result, i) => {
        if (i % 2 === 0) expectBytes(result as Uint8Array, bytes(`v${i}`));
        else assert.equal(result, true);
      });
      const deleted = await Promise.all(Array.from({ length: n }, (_, i) => backend.delete(`${base}:${i}`)));
      assert.equal(deleted.every(Boolean), true);
    });

    it(`offers exactly the declared capabilities (${target.capabilities.join(', ') || 'none'})`, () => {
      const offered = (Object.keys(GUARDS) as Capability[]).filter((name) => GUARDS[name](backend));
      assert.deepEqual(offered.sort(), [...target.capabilities].sort());
    });

    const offers = (name: Capability) => target.capabilities.includes(name);
    if (target.capabilities.length > 0)
      describe('optional capabilities', () => {
        declareIf(offers('batch'))('batch get/set', async () => {
          if (!hasBatch(backend)) throw new Error('declared but missing');
          const base = uniq('batch');
          await backend.setMany([
            { key: `${base}:a`, value: bytes('A') },
            { key: `${base}:b`, value: bytes('B'), ttlSeconds: 60 },
          ]);
          const got = await backend.getMany([`${base}:a`, `${base}:missing`, `${base}:b`]);
          assert.equal(got.length, 3);
          expectBytes(got[0]!, bytes('A'));
          assert.equal(got[1], null);
          expectBytes(got[2]!, bytes('B'));
          assert.deepEqual(await backend.getMany([]), []);
        });

        declareIf(offers('ttl'))('TTL inspection', async () => {
          if (!hasTtl(backend)) throw new Error('declared but missing');
          const key = uniq('ttl-inspect');
          const forever = uniq('ttl-forever');
          await backend.set(key, bytes('v'), 100);
          await backend.set(forever, bytes('f'));
          const entry = await backend.getWithTtl(key);
          expectBytes(entry!.value, bytes('v'));
          compare(entry!.ttlMs, '>', 90_000);
          compare(entry!.ttlMs, '<=', 100_000);
          assert.equal((await backend.getWithTtl(forever))!.ttlMs, null);
          assert.equal(await backend.getWithTtl(uniq('absent')), null);
          const ttl = await backend.getTtl(key);
          compare(ttl, '>', 90);
          compare(ttl, '<=', 100);
          assert.equal(await backend.getTtl(forever), null);
          assert.equal(await backend.getTtl(uniq('absent')), undefined);
          assert.equal(await backend.refreshTtl(key, 1000), true);
          compare(await backend.getTtl(key), '>', 990);
          assert.equal(await backend.refreshTtl(uniq('absent'), 10), false);
        });

        declareIf(offers('locks'))('locks with a lease', async () => {
          if (!hasLocks(backend)) throw new Error('declared but missing');
          const key = uniq('lock');
          const token = await backend.acquireLock(key, 1_000);
          assert.equal(typeof token, 'string');
          assert.equal(await backend.acquireLock(key, 1_000), null);
          assert.equal(await backend.releaseLock(key, 'not-the-token'), false);
          assert.equal(await backend.releaseLock(key, token!), true);
          const second = await backend.acquireLock(key, 500);
          assert.notEqual(second, null);
          await sleep(1_100); // the holder "crashed": its lease expires
          const third = await backend.acquireLock(key, 500);
          assert.notEqual(third, null);
          assert.notEqual(third, second);
          // The lock does not collide with a value of the same key.
          await backend.set(key, bytes('value'));
          expectBytes(await backend.get(key), bytes('value'));
        });

        declareIf(offers('add'))('set-if-absent', async () => {
          if (!hasAdd(backend)) throw new Error('declared but missing');
          const key = uniq('add');
          assert.equal(await backend.add(key, bytes('first'), 60), true);
          assert.equal(await backend.add(key, bytes('second'), 60), false);
          expectBytes(await backend.get(key), bytes('first'));
        });

        declareIf(offers('counter'))('an atomic counter, shared with another instance, readable with get', async () => {
          if (!hasCounter(backend)) throw new Error('declared but missing');
          const other = target.sameStore ? await target.sameStore(backend) : await target.create();
          if (!hasCounter(other)) throw new Error('second instance lacks the capability');
          const key = uniq('counter');
          assert.equal(await backend.incr(key, 1_000), 1_000); // created holding `initial`
          assert.equal(await other.incr(key, 5), 1_001); // `initial` only applies to a missing counter
          // Concurrent increments from two instances: every one gets its own value, none is lost.
          const both = [backend, other] as const;
          const values = await Promise.all(Array.from({ length: 40 }, (_, i) => both[i % 2]!.incr(key, 0)));
          assert.equal(new Set(values).size, 40);
          assert.equal(Math.min(...values), 1_002);
          assert.equal(Math.max(...values), 1_041);
          assert.equal(new TextDecoder().decode((await other.get(key))!), '1041');
          // A value that is not a counter is refused, never silently replaced.
          const plain = uniq('not-a-counter');
          await backend.set(plain, bytes('hello'));
          const refused = await backend.incr(plain, 0).then(
            () => null,
            (error: unknown) => error,
          );
          assert.equal(BackendError.is(refused), true);
          expectBytes(await backend.get(plain), bytes('hello'));
          if (isClosable(other) && other !== backend) await other.close();
        });

        declareIf(offers('invalidation'))('invalidation messages reach another instance', async () => {
          if (!hasInvalidation(backend)) throw new Error('declared but missing');
          const other = await target.create();
          if (!hasInvalidation(other)) throw new Error('second instance lacks the capability');
          const channel = uniq('channel');
          const received: string[] = [];
          const sub = await other.subscribe(
            channel,
            (m) => received.push(m),
            () => {},
          );
          await backend.publish(channel, 'hello ✓');
          const deadline = performance.now() + 5_000;
          while (received.length === 0 && performance.now() < deadline) await sleep(10);
          assert.deepEqual(received, ['hello ✓']);
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
            const started = performance.now();
            const error = await op().then(
              () => new Error(`${name} resolved against a ${mode} server`),
              (e: unknown) => e,
            );
            const elapsed = performance.now() - started;
            assert.equal(BackendError.is(error), true, `${name}: ${String(error)}`);
            assert.ok(['transient', 'timeout'].includes((error as BackendError).kind), `${name}: kind ${(error as BackendError).kind}`);
            // A bound, not a benchmark: the call must end within its configured timeout plus scheduling slack.
            compare(elapsed, '<', boundMs + 1_500, `${name} took ${elapsed} ms`);
          }
          const started = performance.now();
          const [healthy, details] = await down.healthCheck();
          assert.equal(healthy, false);
          assert.equal(details.backend_type, target.backendType);
          assert.equal(typeof details.latency_ms, 'number');
          compare(performance.now() - started, '<', boundMs + 1_500);
        } finally {
          if (isClosable(down)) await down.close();
          await cleanup?.();
        }
      });
    }
  });
}
