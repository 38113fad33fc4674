/**
 * The root export: what an application writes. The byte layer (envelope, interop codecs, encryption primitives,
 * canonical MessagePack) and the building blocks below the loaders are in `cachekit-next/protocol`; the backend
 * conformance suite is `cachekit-next/testing`.
 */
export { cache, type CacheFn } from './loaders/cache.js';
export { pathTag } from './loaders/options.js';
export type { CacheOptions, CachedFunction, CacheInfo, CacheResult, CacheStatus } from './loaders/types.js';
export type { UnstableCacheOptions } from './loaders/unstable-cache.js';
export { cachedFetch, type CachedFetchInit } from './loaders/cached-fetch.js';
export type { CachekitNextOptions } from './stack/stack.js';

export { MemoryBackend, type MemoryBackendOptions } from './backends/memory.js';
export { RedisBackend, type RedisBackendOptions } from './backends/redis.js';
export { FileBackend, type FileBackendOptions } from './backends/file.js';
export { MemcachedBackend, type MemcachedBackendOptions } from './backends/memcached.js';
export { CachekitIOBackend, type CachekitIOBackendOptions } from './backends/cachekitio.js';
export { setDefaultBackend, getDefaultBackend } from './stack/resolve.js';
export {
  BackendError,
  type Backend,
  type BackendErrorKind,
  type BackendErrorOptions,
  type HealthDetails,
  type BatchCapable,
  type TtlCapable,
  type EntryWithTtl,
  type LockCapable,
  type AddCapable,
  type CounterCapable,
  type InvalidationCapable,
  type MessageHandler,
  type Subscription,
  type Closable,
} from './protocol/backend.js';

// Errors an application catches, and the types of its option hooks.
export { ConfigError } from './shared/options.js';
export { setLogger, type Logger } from './shared/log.js';
export { UnstorableValueError } from './wire/typed-value.js';
export { ArgumentKeyError } from './wire/loader-key.js';
export { EncryptionError, type EncryptionOptions } from './wire/encryption.js';
export type { ErrorContext } from './store/tiered.js';
export type { MetricsSnapshot } from './store/metrics.js';
