/**
 * `cachekit-next/use-cache`: the handler object Next loads as `cacheHandlers.default` / `.remote` ('use cache'), its
 * factory `createUseCacheHandler(options)` for a module of your own, and `applyBuiltOptions` for the modules
 * `withCachekit` generates under `output: 'standalone'`.
 */
export { default, createUseCacheHandler, applyBuiltOptions } from './next/use-cache-handler.js';
export type { CachekitNextOptions, UseCacheEntry, UseCacheHandler } from './next/use-cache-handler.js';
