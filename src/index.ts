export * from './backends/types.js';
export { MemoryBackend, type MemoryBackendOptions } from './backends/memory.js';
export { RedisBackend, type RedisBackendOptions } from './backends/redis.js';
export { FileBackend, type FileBackendOptions } from './backends/file.js';
export { MemcachedBackend, type MemcachedBackendOptions } from './backends/memcached.js';
export { CachekitIOBackend, type CachekitIOBackendOptions } from './backends/cachekitio.js';
export { setDefaultBackend, getDefaultBackend, resolveBackend, backendFromEnv, BACKEND_ENV_VARS, type ResolveOptions } from './backends/resolve.js';
export { TieredCache, bytesCodec, type Codec, type TieredCacheOptions, type L1Options, type ErrorHandler, type ErrorContext, type HitSource } from './core/tiered.js';
export { CircuitBreaker, type BreakerOptions, type BreakerState } from './core/breaker.js';
export { ConfigError } from './core/options.js';
export { setLogger, type Logger } from './core/log.js';
export type { MetricsSnapshot } from './core/metrics.js';
export { cache, hashArgs, pathTag, type CacheOptions, type CachedFunction, type CacheInfo, type CacheFn, type CacheResult, type CacheStatus } from './core/cached-function.js';
export { UnstorableValueError } from './core/value-codec.js';
export { ArgumentKeyError } from './core/loader-key.js';
export { Encryptor, EncryptionError, deriveTenantKey, keyFingerprint, buildAad, type EncryptionOptions, type EncryptionContext, type EncryptionFailure } from './core/encryption.js';
export { createEnvelopeCodec, EnvelopeError, ENVELOPE_LIMITS, type EnvelopeCodec, type EnvelopeContents, type EnvelopeOptions } from './core/envelope.js';
export {
  interopKey, interopArgsHash, canonicalArgs, encodeInteropValue, decodeInteropValue, InteropDateTime, InteropUuid, InteropError,
  Float64, CanonicalMsgpackError, INTEROP_SEGMENT, type DecodeOptions,
} from './core/interop.js';
export { cachedFetch, type CachedFetchInit } from './next/cached-fetch.js';
