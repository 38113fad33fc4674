/**
 * A cold read of a page or route: its tags live in the entry (`x-next-cache-tags`), so their states used to be read
 * after it, a second round trip. Two of them follow from the key (Next's getImplicitTags: the root layout's and the
 * pathname's, `_N_T_<pathname>`); the handler now reads their states beside the entry. The other implicit tags (one
 * per segment of the route pattern) are shared by every page of the route, so a process that read one page of a route
 * reads any other of its pages in one round trip (issue 14: cold 5 KB reads).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../src/backends/memory.js';
import { handlerClassFor, implicitTagsOfKey } from '../../src/next/cache-handler.js';
import { CacheStack, resetStacks } from '../../src/stack/stack.js';
import type { GetContext } from '../../src/wire/next-types.js';
import { appPage, appRoute } from './fixtures.js';

const pageCtx: GetContext = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false };
const routeCtx: GetContext = { kind: 'APP_ROUTE', isRoutePPREnabled: false, isFallback: false };
const cacheControl = { revalidate: 3600, expire: 86_400 };
const SHA = 'a'.repeat(64);
const pageKey = (pathname: string) => `/route-cache/APP_PAGE/${SHA}/$${pathname}`;
const routeKey = (pathname: string) => `/route-cache/APP_ROUTE/${SHA}/$${pathname}`;
const pageTags = (id: number) => `_N_T_/layout,_N_T_/blog/layout,_N_T_/blog/[id]/layout,_N_T_/blog/[id]/page,_N_T_/blog/${id}`;

/**
 * A MemoryBackend that logs every read, in order, and while `holdEntries` is set keeps reads of entry keys (not tag
 * keys) waiting: what is issued meanwhile was issued beside the entry read, not after it.
 */
class LoggedMemory extends MemoryBackend {
  readonly log: { op: string; keys: string[] }[] = [];
  holdEntries: Promise<void> | null = null;
  #isEntry = (key: string) => key.includes(':r:');
  override async get(key: string) {
    this.log.push({ op: 'get', keys: [key] });
    if (this.holdEntries && this.#isEntry(key)) await this.holdEntries;
    return super.get(key);
  }
  override async getWithTtl(key: string) {
    this.log.push({ op: 'getWithTtl', keys: [key] });
    if (this.holdEntries && this.#isEntry(key)) await this.holdEntries;
    return super.getWithTtl(key);
  }
  override async getMany(keys: readonly string[]) {
    this.log.push({ op: 'getMany', keys: [...keys] });
    return super.getMany(keys);
  }
  /** The tags whose states were asked for in the log's entries from `from` on. */
  tagsRead(from = 0): string[] {
    return this.log
      .slice(from)
      .flatMap((call) => call.keys)
      .filter((key) => /\.tags\}:[se]:/.test(key))
      .map((key) => key.replace(/^.*\.tags\}:[se]:/, ''))
      .filter((tag, i, all) => all.indexOf(tag) === i);
  }
}

function instance(backend: MemoryBackend) {
  const rt = new CacheStack({ backend, namespace: 'ahead', deploymentId: 'b1' });
  const Handler = handlerClassFor(() => rt);
  return { rt, handler: () => new Handler({}) };
}

afterEach(async () => {
  await resetStacks();
});

describe('implicitTagsOfKey', () => {
  it('reads the pathname from both key formats; `/` and `/index` go together', () => {
    expect(implicitTagsOfKey(pageKey('/blog/7'))).toEqual(['_N_T_/layout', '_N_T_/blog/7']);
    expect(implicitTagsOfKey(routeKey('/api/items'))).toEqual(['_N_T_/layout', '_N_T_/api/items']);
    expect(implicitTagsOfKey('/blog/7')).toEqual(['_N_T_/layout', '_N_T_/blog/7']); // Next before 16.3.8 / 15.5.27
    expect(implicitTagsOfKey(pageKey('/index'))).toEqual(['_N_T_/layout', '_N_T_/', '_N_T_/index']);
  });

  it('guesses nothing where Next encodes the tag or the key is not a path', () => {
    expect(implicitTagsOfKey(pageKey('/caf\u00e9'))).toEqual([]);
    expect(implicitTagsOfKey(pageKey('/a b'))).toEqual([]);
    expect(implicitTagsOfKey('9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08')).toEqual([]);
    expect(implicitTagsOfKey(`/route-cache/APP_PAGE/${SHA}`)).toEqual([]);
  });
});

describe('a cold page read', () => {
  it('reads the states of the tags its key tells beside the entry, not after it', async () => {
    const backend = new LoggedMemory();
    const writer = instance(backend);
    await writer.handler().set(pageKey('/blog/7'), appPage(pageTags(7)), { cacheControl });

    const cold = instance(backend);
    let open!: () => void;
    backend.holdEntries = new Promise<void>((resolve) => (open = resolve));
    const from = backend.log.length;
    const reading = cold.handler().get(pageKey('/blog/7'), pageCtx);
    for (let i = 0; i < 20 && !backend.log.slice(from).some((call) => call.op === 'getMany'); i++) await new Promise((r) => setImmediate(r));
    // The entry is still on its way: the root layout's and the pathname's states are asked for already.
    expect(backend.tagsRead(from)).toEqual(['_N_T_/layout', '_N_T_/blog/7']);
    open();
    const hit = await reading;
    expect(hit?.value).toMatchObject({ kind: 'APP_PAGE', headers: { 'x-next-cache-tags': pageTags(7) } });
    // Then the rest of the entry's tags (the route pattern's), which it could not guess.
    expect(backend.tagsRead(from)).toEqual(['_N_T_/layout', '_N_T_/blog/7', '_N_T_/blog/layout', '_N_T_/blog/[id]/layout', '_N_T_/blog/[id]/page']);
  });

  it('another page of a route it read before costs one round trip: nothing is read after the entry', async () => {
    const backend = new LoggedMemory();
    const writer = instance(backend);
    for (const id of [1, 2]) await writer.handler().set(pageKey(`/blog/${id}`), appPage(pageTags(id)), { cacheControl });

    const cold = instance(backend);
    expect(await cold.handler().get(pageKey('/blog/1'), pageCtx)).not.toBeNull();
    const from = backend.log.length;
    expect(await cold.handler().get(pageKey('/blog/2'), pageCtx)).not.toBeNull();
    const calls = backend.log.slice(from);
    const entryAt = calls.findIndex((call) => call.keys.some((key) => key.includes(':r:')));
    expect(entryAt).toBeGreaterThanOrEqual(0);
    // The pathname's states were read beside the entry (issued before its read), nothing after it.
    expect(
      calls
        .slice(0, entryAt)
        .flatMap((call) => call.keys)
        .some((key) => key.endsWith(':_N_T_/blog/2')),
    ).toBe(true);
    expect(calls.slice(entryAt + 1)).toEqual([]);
  });

  it('a pathname revalidated on another instance is still seen: the read-ahead is only early, never trusted blindly', async () => {
    const backend = new LoggedMemory();
    const a = instance(backend);
    await a.handler().set(pageKey('/blog/3'), appPage(pageTags(3)), { cacheControl });
    await a.handler().set(routeKey('/api/items'), appRoute(), { cacheControl });
    await new Promise((r) => setTimeout(r, 2)); // the event comes after the writes' millisecond
    await a.handler().revalidateTag(['_N_T_/blog/3', '_N_T_/api/items']); // revalidatePath: expired now

    const cold = instance(backend);
    expect(await cold.handler().get(pageKey('/blog/3'), pageCtx)).toBeNull();
    expect(await cold.handler().get(routeKey('/api/items'), routeCtx)).toBeNull();
  });

  it('an entry in the L1 reads nothing ahead: its tags, when their states must be read again, in one read', async () => {
    const backend = new LoggedMemory();
    const a = instance(backend);
    await a.handler().set(pageKey('/blog/4'), appPage(pageTags(4)), { cacheControl });
    expect(await a.handler().get(pageKey('/blog/4'), pageCtx)).not.toBeNull();
    a.rt.tags.clearLocal(); // the tag states' local copies lapsed, the entry's did not
    const from = backend.log.length;
    expect(await a.handler().get(pageKey('/blog/4'), pageCtx)).not.toBeNull();
    const calls = backend.log.slice(from);
    expect(calls.flatMap((call) => call.keys).filter((key) => key.includes(':r:'))).toEqual([]);
    // One batched read of all five tags (the verdict's); a read-ahead would have split it in two.
    expect(calls.filter((call) => call.op === 'getMany')).toHaveLength(1);
    expect(backend.tagsRead(from)).toHaveLength(5);
  });
});
