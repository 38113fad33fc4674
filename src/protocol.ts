/**
 * `cachekit-next/protocol`: the byte layer (the cachekit envelope, interop key and value codecs, encryption
 * primitives, canonical MessagePack) and the building blocks under the loaders and handlers (TieredCache,
 * CircuitBreaker, backend resolution and capability guards), for code that composes its own cache or reads the
 * stored bytes. Applications use the root export.
 */
export { hasBatch, hasTtl, hasLocks, hasAdd, hasCounter, hasInvalidation, isClosable, isBackend } from './backends/types.js';
export { resolveBackend, backendFromEnv, BACKEND_ENV_VARS, type ResolveOptions } from './backends/resolve.js';
export { TieredCache, bytesCodec, type Codec, type TieredCacheOptions, type L1Options, type ErrorHandler, type HitSource } from './core/tiered.js';
export { CircuitBreaker, type BreakerOptions, type BreakerState } from './core/breaker.js';
export { hashArgs } from './core/cached-function.js';
export { Encryptor, deriveTenantKey, keyFingerprint, buildAad, type EncryptionContext, type EncryptionFailure } from './core/encryption.js';
export { createEnvelopeCodec, EnvelopeError, ENVELOPE_LIMITS, type EnvelopeCodec, type EnvelopeContents, type EnvelopeOptions } from './core/envelope.js';
export {
  interopKey, interopArgsHash, canonicalArgs, encodeInteropValue, decodeInteropValue, InteropDateTime, InteropUuid, InteropError,
  Float64, CanonicalMsgpackError, INTEROP_SEGMENT, type DecodeOptions,
} from './core/interop.js';
