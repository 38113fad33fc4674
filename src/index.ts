/**
 * The root export: what an application writes. The byte layer (envelope, interop codecs, encryption primitives,
 * canonical MessagePack) and the building blocks below the loaders are in `cachekit-next/protocol`; the backend
 * conformance suite is `cachekit-next/testing`.
 */
export { cache, pathTag, type CacheOptions, type CachedFunction, type CacheInfo, type CacheFn, type CacheResult, type CacheStatus, type UnstableCacheOptions } from './core/cached-function.js';
export { cachedFetch, type CachedFetchInit } from './next/cached-fetch.js';
export type { CachekitNextOptions } from './next/runtime.js';

export { MemoryBackend, type MemoryBackendOptions } from './backends/memory.js';
export { RedisBackend, type RedisBackendOptions } from './backends/redis.js';
export { FileBackend, type FileBackendOptions } from './backends/file.js';
export { MemcachedBackend, type MemcachedBackendOptions } from './backends/memcached.js';
export { CachekitIOBackend, type CachekitIOBackendOptions } from './backends/cachekitio.js';
export { setDefaultBackend, getDefaultBackend } from './backends/resolve.js';
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
} from './backends/types.js';

// Errors an application catches, and the types of its option hooks.
export { ConfigError } from './core/options.js';
export { setLogger, type Logger } from './core/log.js';
export { UnstorableValueError } from './core/value-codec.js';
export { ArgumentKeyError } from './core/loader-key.js';
export { EncryptionError, type EncryptionOptions } from './core/encryption.js';
export type { ErrorContext } from './core/tiered.js';
export type { MetricsSnapshot } from './core/metrics.js';
