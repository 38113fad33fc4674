/**
 * What drawing randomness outside the render costs (src/shared/random.ts): per call, Node's sync sources against the
 * block-drawn ones, outside any async context and inside an AsyncLocalStorage store (as in a request), and an
 * encrypted 4 KB entry sealed with each nonce source.
 *
 *   node bench/run.mjs random
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import * as crypto from 'node:crypto';
import { sealFrame } from '../src/wire/encryption.js';
import { randomBytes, randomUUID } from '../src/shared/random.js';

function nsPerCall(fn: () => unknown): number {
  const iterations = 300_000;
  for (let i = 0; i < 20_000; i++) fn();
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn();
  return Number(process.hrtime.bigint() - start) / iterations;
}

const key = crypto.randomBytes(32);
const aad = Buffer.from('tenant|key|cachekit-next');
const page = crypto.randomBytes(4096);
const storage = new AsyncLocalStorage<object>();
const cases: [string, () => unknown][] = [
  ['crypto.randomBytes(12)', () => crypto.randomBytes(12)],
  ['random.randomBytes(12)', () => randomBytes(12)],
  ['crypto.randomUUID()', () => crypto.randomUUID()],
  ['random.randomUUID()', () => randomUUID()],
  ['sealFrame 4 KB, crypto nonce', () => sealFrame(key, page, aad, crypto.randomBytes(12))],
  ['sealFrame 4 KB, random.ts nonce', () => sealFrame(key, page, aad)],
];
console.log(`| call | ns/call, no context | ns/call, in a request's context |\n| --- | ---: | ---: |`);
for (const [name, fn] of cases) {
  const outside = nsPerCall(fn);
  const inside = storage.run({ request: 1 }, () => nsPerCall(fn));
  console.log(`| ${name} | ${outside.toFixed(0)} | ${inside.toFixed(0)} |`);
}
