/**
 * A tiered cache whose values are encrypted before they reach either tier: the L1 holds the same ciphertext as the
 * L2, and every read, L1 hits included, decrypts (plaintext never rests in the process's cache memory). With
 * `clearCipher` the bytes are stored as they are, and every read still decodes a value of its own.
 *
 * A value that fails to decrypt (tampered, moved to another key or tenant, written with an unknown master key) is a
 * miss and is evicted (fail-open), or an EncryptionError for the caller when the cipher is fail-closed, and the
 * entry then stays for inspection.
 *
 * The AAD binds the logical backend key (cachekit protocol, 2026-10-05): the key with every client-side prefix, the
 * backend's own `keyPrefix` included (RedisBackend, MemcachedBackend), so a value copied under another prefix of one
 * store never opens. Readers never retry with the bare key. Entries sealed before this (AAD over the key without
 * the backend's prefix) are misses once, evicted and recomputed; on a backend without a prefix nothing changed.
 */
import type { Backend } from '../protocol/backend.js';
import { EncryptionError, type EncryptionContext, type Encryptor } from '../wire/encryption.js';
import { warnRateLimited } from '../shared/log.js';
import type { MetricsSnapshot } from './metrics.js';
import type { HitSource, TieredCache } from './tiered.js';
import type { Serializer } from '../wire/frame.js';

/**
 * The prefix a backend puts in front of every key (`keyPrefix`, as RedisBackend and MemcachedBackend have), '' for
 * none. A custom backend that prefixes keys should expose it the same way, so its encrypted entries bind it.
 */
export function backendKeyPrefix(backend: Backend | null | undefined): string {
  const prefix = (backend as { keyPrefix?: unknown } | null | undefined)?.keyPrefix;
  return typeof prefix === 'string' ? prefix : '';
}

/** How values are sealed under a key for a tenant: one of the two frame forms of an Encryptor. */
export interface Cipher {
  readonly failClosed: boolean;
  seal(plain: Uint8Array, key: string, tenant: string): Uint8Array;
  /** Throws EncryptionError when the frame cannot be opened. */
  open(frame: Uint8Array, key: string, tenant: string): Uint8Array;
}

/** This project's entry frames (key fingerprint in front, so rotated keys are found), AAD from `context`. */
export function entryCipher(encryptor: Encryptor, context: (key: string, tenant: string) => EncryptionContext): Cipher {
  return {
    failClosed: encryptor.failClosed,
    seal: (plain, key, tenant) => encryptor.encrypt(plain, context(key, tenant)),
    open: (frame, key, tenant) => encryptor.decrypt(frame, context(key, tenant)),
  };
}

/** Bytes stored as they are: the cache still keeps bytes in its L1 and decodes a fresh value for every read. */
export const clearCipher: Cipher = { failClosed: false, seal: (plain) => plain, open: (frame) => frame };

/** cachekit's bare interop frames (nonce || ciphertext || tag over the plain value), current key only. */
export function interopCipher(encryptor: Encryptor): Cipher {
  return {
    failClosed: encryptor.failClosed,
    seal: (plain, key, tenant) => encryptor.encryptInterop(plain, tenant, key),
    open: (frame, key, tenant) => encryptor.decryptInterop(frame, tenant, key),
  };
}

export class SealedCache<T> {
  readonly #inner: TieredCache<Uint8Array>;
  readonly #serializer: Serializer<T>;
  readonly #cipher: Cipher;
  readonly #tenant: string;
  /** The backend's own key prefix: the AAD binds `prefix + key`, the key as the store holds it. */
  readonly #aadPrefix: string;

  /**
   * @param inner a TieredCache of bytes (`bytesSerializer`)
   * @param tenant the tenant of calls that name none
   */
  constructor(inner: TieredCache<Uint8Array>, codec: Serializer<T>, cipher: Cipher, tenant = 'default') {
    this.#inner = inner;
    this.#serializer = codec;
    this.#cipher = cipher;
    this.#tenant = tenant;
    this.#aadPrefix = backendKeyPrefix(inner.backend);
  }

  get backend() {
    return this.#inner.backend;
  }

  get name() {
    return this.#inner.name;
  }

  async lookup(key: string, tenant = this.#tenant): Promise<{ value: T; source: HitSource } | null> {
    const hit = await this.#inner.lookup(key);
    if (!hit) return null;
    let plain: Uint8Array;
    try {
      plain = this.#cipher.open(hit.value, this.#aadPrefix + key, tenant);
    } catch (error) {
      if (!(error instanceof EncryptionError) || this.#cipher.failClosed) throw error;
      warnRateLimited(`${this.name}:decrypt:${error.kind}`, `${error.message} (${this.name}, key ${key}: evicted, served as a miss)`);
      await this.#inner.delete(key);
      return null;
    }
    try {
      return { value: this.#serializer.decode(plain), source: hit.source };
    } catch (error) {
      // Opened, yet not decodable: another writer's format or version. A miss (the entry is left to its owner).
      warnRateLimited(
        `${this.name}:decode`,
        `[cachekit] ${this.name}: value under ${key} could not be decoded (${(error as Error).message}); served as a miss`,
      );
      return null;
    }
  }

  async get(key: string, tenant?: string): Promise<T | null> {
    return (await this.lookup(key, tenant))?.value ?? null;
  }

  set(key: string, value: T, ttlSeconds?: number, tenant = this.#tenant): Promise<boolean> {
    return this.#inner.set(key, this.#seal(key, value, tenant), ttlSeconds);
  }

  add(key: string, value: T, ttlSeconds?: number, tenant = this.#tenant): Promise<boolean> {
    return this.#inner.add(key, this.#seal(key, value, tenant), ttlSeconds);
  }

  delete(key: string): Promise<boolean> {
    return this.#inner.delete(key);
  }

  invalidateLocal(key: string): void {
    this.#inner.invalidateLocal(key);
  }

  clearLocal(): void {
    this.#inner.clearLocal();
  }

  hasLocal(key: string): boolean {
    return this.#inner.hasLocal(key);
  }

  /** What the tiers hold, for tests and inspection: ciphertext. */
  peek(key: string): Promise<{ value: Uint8Array; source: HitSource } | null> {
    return this.#inner.lookup(key);
  }

  stats(): MetricsSnapshot {
    return this.#inner.stats();
  }

  #seal(key: string, value: T, tenant: string): Uint8Array {
    return this.#cipher.seal(this.#serializer.encode(value), this.#aadPrefix + key, tenant);
  }
}
