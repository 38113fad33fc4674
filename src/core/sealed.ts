/**
 * A tiered cache whose values are encrypted before they reach either tier: the L1 holds the same ciphertext as the
 * L2, and every read, L1 hits included, decrypts (plaintext never rests in the process's cache memory).
 *
 * A value that fails to decrypt (tampered, moved to another key or tenant, written with an unknown master key) is a
 * miss and is evicted (fail-open), or an EncryptionError for the caller when the encryptor is fail-closed, and the
 * entry then stays for inspection.
 */
import { EncryptionError, type EncryptionContext, type Encryptor } from './encryption.js';
import { warnRateLimited } from './log.js';
import type { MetricsSnapshot } from './metrics.js';
import type { Codec, HitSource, TieredCache } from './tiered.js';

export class SealedCache<T> {
  readonly #inner: TieredCache<Uint8Array>;
  readonly #codec: Codec<T>;
  readonly #encryptor: Encryptor;
  readonly #context: (key: string, tenant: string) => EncryptionContext;
  readonly #tenant: string;

  /**
   * @param inner a TieredCache of bytes (`bytesCodec`)
   * @param context the AAD fields of a key (tenant and key at least)
   * @param tenant the tenant of calls that name none
   */
  constructor(inner: TieredCache<Uint8Array>, codec: Codec<T>, encryptor: Encryptor, context: (key: string, tenant: string) => EncryptionContext, tenant = 'default') {
    this.#inner = inner;
    this.#codec = codec;
    this.#encryptor = encryptor;
    this.#context = context;
    this.#tenant = tenant;
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
      plain = this.#encryptor.decrypt(hit.value, this.#context(key, tenant));
    } catch (error) {
      if (!(error instanceof EncryptionError) || this.#encryptor.failClosed) throw error;
      warnRateLimited(`${this.name}:decrypt:${error.kind}`, `${error.message} (${this.name}, key ${key}: evicted, served as a miss)`);
      await this.#inner.delete(key);
      return null;
    }
    try {
      return { value: this.#codec.decode(plain), source: hit.source };
    } catch (error) {
      // Authenticated, yet not decodable: written by another version. A miss, never a crash.
      warnRateLimited(`${this.name}:decode`, `[cachekit] ${this.name}: decrypted value under ${key} could not be decoded (${(error as Error).message}); served as a miss`);
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
    return this.#encryptor.encrypt(this.#codec.encode(value), this.#context(key, tenant));
  }
}
