/** Cache values shaped exactly as Next.js 16 hands them to a cache handler. */
import type { IncrementalCacheValue } from '../../src/wire/next-types.js';

export const appPage = (tags = '_N_T_/layout,_N_T_/blog/layout,_N_T_/blog/page,_N_T_/blog,posts'): IncrementalCacheValue => ({
  kind: 'APP_PAGE',
  html: '<!DOCTYPE html><html><body><h1>Blog — ünïcödé ✓ 🚀</h1></body></html>',
  rscData: Buffer.from([0, 1, 2, 255, 254, 0x0a, 0x3a]),
  headers: { 'x-next-cache-tags': tags, 'x-custom': ['a', 'b'], vary: 'RSC, Next-Router-State-Tree' },
  postponed: undefined,
  status: 200,
  segmentData: new Map([
    ['/_tree', Buffer.from('tree-bytes')],
    ['/blog/__PAGE__', Buffer.from([0, 0, 7, 200])],
  ]),
});

export const postponedPage = (): IncrementalCacheValue => ({
  kind: 'APP_PAGE',
  html: '<html>shell</html>',
  rscData: Buffer.from('rsc'),
  headers: { 'x-next-cache-tags': '_N_T_/ppr' },
  postponed: '{"type":2,"fallbackRouteParams":null}',
  status: 200,
});

export const appRoute = (): IncrementalCacheValue => ({
  kind: 'APP_ROUTE',
  body: Buffer.from(JSON.stringify({ now: 123, items: [1, 2, 3] })),
  status: 201,
  headers: { 'content-type': 'application/json', 'x-next-cache-tags': '_N_T_/api/items/route,_N_T_/api/items,items' },
});

export const pagesPage = (): IncrementalCacheValue => ({
  kind: 'PAGES',
  html: '<div id="__next">pages router</div>',
  pageData: { pageProps: { n: 1, nested: { list: ['x', null, true] } } },
  headers: { 'x-next-cache-tags': '_N_T_/legacy' },
  status: 200,
});

export const fetchValue = (body = Buffer.from('{"id":1,"title":"Hello"}').toString('base64')): IncrementalCacheValue => ({
  kind: 'FETCH',
  data: { headers: { 'content-type': 'application/json', date: 'Tue, 25 Nov 2026 04:00:00 GMT' }, body, url: 'https://api.example.com/posts/1', status: 200 },
  tags: ['posts', 'post-1'],
  revalidate: 60,
});

export const redirect = (): IncrementalCacheValue => ({ kind: 'REDIRECT', props: { __N_REDIRECT: '/elsewhere', __N_REDIRECT_STATUS: 307 } });

export const image = (): IncrementalCacheValue => ({
  kind: 'IMAGE',
  etag: 'W/"abc"',
  upstreamEtag: '"up-1"',
  buffer: Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7) % 256)),
  extension: 'webp',
  revalidate: 3600,
});
