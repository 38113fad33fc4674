/**
 * The L1 byte budget bounds the memory its copies hold, on a real Redis: pages whose stored form is small (LZ4 of
 * repetitive HTML) but whose decoded form is large (an HTML string with a non-Latin-1 character is two bytes a
 * character, plus the RSC buffer) must not fill the heap to several times `l1.maxSizeMb`, whether they entered the L1
 * by a write or by an L2 read. What each copy holds is counted here from below (string characters and buffer bytes
 * only, no object overhead), so the sum can only understate it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisBackend } from '../../src/backends/redis.js';
import { handlerClassFor } from '../../src/next/cache-handler.js';
import { CacheStack } from '../../src/stack/stack.js';
import { handlerEntryKey } from '../../src/wire/keys.js';
import type { GetContext } from '../../src/wire/next-types.js';
import { startRedis } from '../support/servers.js';

const BUDGET_MB = 1;
const BUDGET_BYTES = BUDGET_MB * 1024 * 1024;
const PAGES = 300;
const pageCtx: GetContext = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false };

let redis: Awaited<ReturnType<typeof startRedis>>;
const backends: RedisBackend[] = [];
const stacks: CacheStack[] = [];

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  for (const rt of stacks) await rt.close();
  for (const backend of backends) await backend.close();
  await redis.stop();
});

async function instance() {
  const backend = new RedisBackend({ url: redis.url });
  backends.push(backend);
  const rt = new CacheStack({ backend, namespace: 'budget', deploymentId: 'd1', l1: { maxSizeMb: BUDGET_MB } });
  stacks.push(rt);
  await rt.ready;
  const Handler = handlerClassFor(() => rt);
  return { rt, handler: new Handler({}) };
}

/** ~8,000 characters of HTML (two-byte: it has an em dash) and 3 KB of RSC: ~19 KB in memory, ~1 KB stored. */
function page(i: number) {
  const html = `<!DOCTYPE html><html><body><h1>Post ${i} — café</h1>${'<p class="text">The same paragraph again, as lists of cards are.</p>'.repeat(120)}</body></html>`;
  const rscData = Buffer.from(`0:{"page":${i}}\n${'1:["$","p",null,{"children":"The same paragraph again"}]\n'.repeat(55)}`);
  return {
    kind: 'APP_PAGE' as const,
    html,
    rscData,
    headers: { 'x-next-cache-tags': `_N_T_/layout,_N_T_/p/${i}` },
    status: 200,
  };
}

/** What the L1 copies of the pages hold at least: the characters of each HTML string, the bytes of each RSC buffer. */
async function heldAtLeast(rt: CacheStack, handler: { get(key: string, ctx: GetContext): Promise<{ value: unknown } | null> }) {
  let bytes = 0;
  let entries = 0;
  for (let i = 0; i < PAGES; i++) {
    if (!rt.entries.hasLocal(handlerEntryKey(rt, 'response', `/p/${i}`, 'd1'))) continue;
    const value = (await handler.get(`/p/${i}`, pageCtx))!.value as { html: string; rscData: Buffer }; // an L1 hit
    bytes += 2 * value.html.length + value.rscData.byteLength;
    entries++;
  }
  return { bytes, entries };
}

describe('L1 byte budget', () => {
  it('bounds what the copies of written pages hold in memory, not their stored size', async () => {
    const { rt, handler } = await instance();
    for (let i = 0; i < PAGES; i++) await handler.set(`/p/${i}`, page(i), { cacheControl: { revalidate: 3600, expire: 86_400 } });
    const stored = await rt.backend!.get(handlerEntryKey(rt, 'response', `/p/${PAGES - 1}`, 'd1'));
    expect(stored!.byteLength).toBeLessThan(4096); // stored small: counted by that, the L1 would keep every page
    const held = await heldAtLeast(rt, handler);
    expect(held.bytes).toBeLessThanOrEqual(BUDGET_BYTES);
    expect(held.entries).toBeGreaterThan(10); // still a cache: the most recent pages stay
    expect(rt.entries.hasLocal(handlerEntryKey(rt, 'response', `/p/${PAGES - 1}`, 'd1'))).toBe(true);
  });

  it('bounds what the copies of pages read from the L2 hold in memory', async () => {
    const { rt, handler } = await instance();
    for (let i = 0; i < PAGES; i++) expect(await handler.get(`/p/${i}`, pageCtx)).not.toBeNull(); // written by the first instance
    const held = await heldAtLeast(rt, handler);
    expect(held.bytes).toBeLessThanOrEqual(BUDGET_BYTES);
    expect(held.entries).toBeGreaterThan(10);
  });
});
