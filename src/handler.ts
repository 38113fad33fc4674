/**
 * `cachekit-next/handler`: the module Next loads as `cacheHandler` (its default export, configured by `withCachekit` or
 * the environment), `createCacheHandler(options)` for a module of your own, and `applyBuiltOptions` for the modules
 * `withCachekit` generates under `output: 'standalone'`.
 */
export { default, createCacheHandler, applyBuiltOptions } from './next/cache-handler.js';
export type { CacheHandlerClass, CachekitCacheHandler, CachekitNextOptions } from './next/cache-handler.js';
