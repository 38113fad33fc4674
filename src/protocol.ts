/**
 * `cachekit-next/protocol`: the byte layer (the cachekit envelope, interop key and value codecs, encryption
 * primitives, canonical MessagePack) and the building blocks under the loaders and handlers (TieredCache,
 * CircuitBreaker, backend resolution and capability guards), for code that composes its own cache or reads the
 * stored bytes. Applications use the root export.
 */
export { hasBatch, hasTtl, hasLocks, hasAdd, hasCounter, hasInvalidation, isClosable, isBackend } from './protocol/backend.js';
export { resolveBackend, backendFromEnv, BACKEND_ENV_VARS, type ResolveOptions } from './stack/resolve.js';
export { bytesSerializer, type Serializer } from './wire/frame.js';
export { TieredCache, type TieredCacheOptions, type L1Options, type ErrorHandler, type HitSource } from './store/tiered.js';
export { CircuitBreaker, type BreakerOptions, type BreakerState } from './store/breaker.js';
export { hashArgs } from './wire/loader-key.js';
export { Encryptor, deriveTenantKey, keyFingerprint, buildAad, type EncryptionContext, type EncryptionFailure } from './wire/encryption.js';
export { createEnvelopeFormat, EnvelopeError, ENVELOPE_LIMITS, type EnvelopeFormat, type EnvelopeContents, type EnvelopeOptions } from './wire/envelope.js';
export {
  interopKey,
  interopArgsHash,
  canonicalArgs,
  encodeInteropValue,
  decodeInteropValue,
  InteropDateTime,
  InteropUuid,
  InteropError,
  Float64,
  CanonicalMsgpackError,
  INTEROP_SEGMENT,
  type DecodeOptions,
} from './wire/interop.js';
