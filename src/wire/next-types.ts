/**
 * The shapes Next.js (15.5 and 16.x) passes to a legacy `cacheHandler`, written out structurally so this package does
 * not depend on Next's internal type modules. Kinds are compared as string literals: Next's `CachedRouteKind` const
 * enums do not survive `isolatedModules`.
 */
import type { OutgoingHttpHeaders } from 'node:http';

export interface CacheControl {
  /** Seconds until the entry is stale; `false` = never. */
  revalidate: number | false;
  /** Seconds until the entry must not be served at all. */
  expire?: number;
}

export interface AppPageValue {
  kind: 'APP_PAGE';
  html: string;
  rscData?: Buffer;
  headers?: OutgoingHttpHeaders;
  postponed?: string;
  status?: number;
  segmentData?: Map<string, Buffer>;
}

export interface AppRouteValue {
  kind: 'APP_ROUTE';
  body: Buffer;
  status: number;
  headers: OutgoingHttpHeaders;
}

export interface PagesValue {
  kind: 'PAGES';
  html: string;
  pageData: unknown;
  headers?: OutgoingHttpHeaders;
  status?: number;
}

export interface FetchValue {
  kind: 'FETCH';
  data: { headers: Record<string, string>; body: string; url: string; status?: number };
  tags?: string[];
  revalidate: number;
}

export interface RedirectValue {
  kind: 'REDIRECT';
  props: unknown;
}

export interface ImageValue {
  kind: 'IMAGE';
  etag: string;
  upstreamEtag: string;
  buffer: Buffer;
  extension: string;
  revalidate?: number;
}

export type IncrementalCacheValue = AppPageValue | AppRouteValue | PagesValue | FetchValue | RedirectValue | ImageValue;

/** The kinds Next asks for in `get` (`ctx.kind`). */
export type IncrementalCacheKind = 'APP_PAGE' | 'APP_ROUTE' | 'PAGES' | 'FETCH' | 'IMAGE';

export interface GetContext {
  kind: IncrementalCacheKind;
  revalidate?: number | false;
  fetchUrl?: string;
  fetchIdx?: number;
  tags?: string[];
  softTags?: string[];
  isRoutePPREnabled?: boolean;
  isFallback?: boolean;
}

export interface SetContext {
  fetchCache?: boolean;
  fetchUrl?: string;
  fetchIdx?: number;
  tags?: string[];
  revalidate?: number | false;
  cacheControl?: CacheControl;
  isRoutePPREnabled?: boolean;
  isFallback?: boolean;
  kind?: IncrementalCacheKind;
  isImplicitBuildTimeCache?: boolean;
}

export interface CacheHandlerContext {
  dev?: boolean;
  serverDistDir?: string;
  fetchCacheKeyPrefix?: string;
  maxMemoryCacheSize?: number;
  revalidatedTags?: string[];
  flushToDisk?: boolean;
  _requestHeaders?: Record<string, unknown>;
  [other: string]: unknown;
}

export interface CacheHandlerValue {
  lastModified: number;
  value: IncrementalCacheValue | null;
  cacheControl?: CacheControl;
  age?: number;
}

/** The header in which pages and routes carry their tags (implicit ones included), comma-separated. */
export const NEXT_CACHE_TAGS_HEADER = 'x-next-cache-tags';
