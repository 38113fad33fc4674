/**
 * Warm start: `next build` writes prerendered ISR output to `.next/server/app/*.{html,rsc,body,meta,segments}`, never
 * to the cache handler, so without this the first request per route after a deploy is a full render. Seeding copies
 * that output into the shared store under the exact keys Next will ask for (`routeCache.key` of the `.meta`, 16.4+),
 * with set-if-absent: an entry another instance already regenerated is never overwritten.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { HandlerEntry } from '../wire/next-entry.js';
import type { CacheStack } from '../stack/stack.js';
import { NEXT_CACHE_TAGS_HEADER, type CacheControl, type IncrementalCacheValue } from '../wire/next-types.js';

interface PrerenderRoute {
  initialRevalidateSeconds?: number | false;
  initialExpireSeconds?: number;
  initialStatus?: number;
  dataRoute?: string | null;
}

interface RouteMeta {
  headers?: Record<string, string>;
  status?: number;
  postponed?: string;
  segmentPaths?: string[];
  routeCache?: { key?: string; isFallback?: boolean };
}

export interface SeedResult {
  /** Routes written to the store. */
  seeded: number;
  /** Routes the store already held (newer or seeded by another instance). */
  present: number;
  /** Routes that could not be seeded (no `routeCache.key`: Next before 16.4, or unreadable files). */
  skipped: number;
}

const readJson = async <T>(file: string): Promise<T> => JSON.parse(await readFile(file, 'utf8')) as T;
const readOptional = (file: string) => readFile(file).catch(() => undefined);

/**
 * Seeds every prerendered App Router route of the build in `serverDistDir` (`.next/server`). `storeKey` maps Next's
 * key to the store key (deployment scoping is the handler's). Safe to run on every instance at once.
 */
export async function seedFromBuild(rt: CacheStack, serverDistDir: string, storeKey: (key: string) => string): Promise<SeedResult> {
  const result: SeedResult = { seeded: 0, present: 0, skipped: 0 };
  const manifest = await readJson<{ routes?: Record<string, PrerenderRoute> }>(path.join(serverDistDir, '..', 'prerender-manifest.json'));
  for (const [route, info] of Object.entries(manifest.routes ?? {})) {
    try {
      const base = path.join(serverDistDir, 'app', route === '/' ? 'index' : route.slice(1));
      const meta = await readJson<RouteMeta>(`${base}.meta`).catch(() => undefined);
      const key = meta?.routeCache?.key;
      if (!meta || !key || meta.routeCache?.isFallback) {
        result.skipped++;
        continue;
      }
      const value = await buildValue(base, meta, info);
      if (!value) {
        result.skipped++;
        continue;
      }
      const cacheControl: CacheControl = { revalidate: info.initialRevalidateSeconds ?? false };
      if (info.initialExpireSeconds !== undefined) cacheControl.expire = info.initialExpireSeconds;
      const primary = value.kind === 'APP_ROUTE' ? `${base}.body` : `${base}.html`;
      const header = meta.headers?.[NEXT_CACHE_TAGS_HEADER];
      const entry: HandlerEntry = {
        lastModified: (await stat(primary)).mtimeMs,
        tags: typeof header === 'string' && header ? header.split(',') : [],
        value,
        cacheControl,
      };
      const stored = await rt.entries.add(storeKey(key), entry, rt.ttlFor(cacheControl.expire));
      if (stored) result.seeded++;
      else result.present++;
    } catch (error) {
      result.skipped++;
      rt.report(error, 'warmStart');
    }
  }
  return result;
}

async function buildValue(base: string, meta: RouteMeta, info: PrerenderRoute): Promise<IncrementalCacheValue | undefined> {
  const headers = meta.headers ?? {};
  const status = meta.status ?? info.initialStatus;
  if (info.dataRoute === null) {
    const body = await readOptional(`${base}.body`);
    if (!body) return undefined;
    return { kind: 'APP_ROUTE', body, status: status ?? 200, headers };
  }
  const html = await readFile(`${base}.html`, 'utf8').catch(() => undefined);
  if (html === undefined) return undefined;
  const value: IncrementalCacheValue = { kind: 'APP_PAGE', html, headers };
  if (status !== undefined) value.status = status;
  if (meta.postponed !== undefined) value.postponed = meta.postponed;
  const rscData = await readOptional(`${base}.rsc`);
  if (rscData) value.rscData = rscData;
  if (meta.segmentPaths?.length) {
    const segments = new Map<string, Buffer>();
    for (const segmentPath of meta.segmentPaths) {
      const data = await readOptional(`${base}.segments${segmentPath}.segment.rsc`);
      if (data) segments.set(segmentPath, data);
    }
    value.segmentData = segments;
  }
  return value;
}
