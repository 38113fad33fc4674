/**
 * Client-side encryption (protocol notes section 4): AES-256-GCM with per-tenant keys derived by HKDF-SHA256 from the
 * master key, and an AAD binding each value to its tenant and cache key (a value copied under another key or tenant
 * fails to decrypt).
 *
 *   cipher frame (what cachekit writes, and what interop mode stores):   nonce(12) || ciphertext || tag(16)
 *   entry frame (this project's own entries):   magic "cE" (0x63 0x45) || version 0x01 || fingerprint(16) || cipher frame
 *
 * The fingerprint (first 16 bytes of SHA-256("key_fingerprint_v1" || derived tenant key), as the vectors'
 * `derived_key_fingerprint_hex`) is not inside cachekit's cipher frame, so entry frames carry it in front: a reader
 * picks the key (current or one of up to 3 previous master keys) by fingerprint and never decrypts by trial. Interop
 * frames carry none, so they are written and read with the current key only.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, timingSafeEqual } from 'node:crypto';
import { randomBytes } from '../shared/random.js';
import { assertKnownOptions, ConfigError, envBoolean } from '../shared/options.js';
import { processEnv } from '../shared/env.js';

const COMPONENT = 'encryption';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const FINGERPRINT_BYTES = 16;
const MAGIC_0 = 0x63; // 'c'
const MAGIC_1 = 0x45; // 'E'
const VERSION = 0x01;
const ENTRY_HEADER_BYTES = 3 + FINGERPRINT_BYTES;
const AAD_VERSION = 0x03;
const MAX_PREVIOUS_KEYS = 3;
const MAX_CACHED_TENANT_KEYS = 1024;

export type EncryptionFailure = 'malformed' | 'unknown-key' | 'authentication';

/** A value that cannot be decrypted: malformed frame, key not known (by fingerprint), or tampered/misplaced value. */
export class EncryptionError extends Error {
  override readonly name = 'EncryptionError';
  constructor(
    readonly kind: EncryptionFailure,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`[cachekit] [encryption] ${message}`, options);
  }
}

/** What the AAD binds a value to. */
export interface EncryptionContext {
  tenantId: string;
  cacheKey: string;
  /** Serialization format of the plaintext. @default "msgpack" */
  format?: string;
  /** Whether the plaintext is compressed (a ByteStorage envelope). Always false in interop mode. @default false */
  compressed?: boolean;
}

export interface EncryptionOptions {
  /** The master key: bytes, or hex; at least 32 bytes. Env: CACHEKIT_MASTER_KEY. */
  masterKey: Uint8Array | string;
  /** Keys still accepted for reading after a rotation (at most 3). Env: CACHEKIT_PREVIOUS_MASTER_KEYS (comma-separated hex). @default [] */
  previousMasterKeys?: readonly (Uint8Array | string)[];
  /** A failed decrypt is an error instead of a miss (plus eviction). Env: CACHEKIT_ENCRYPTION_FAIL_CLOSED. @default false */
  failClosed?: boolean;
}

/** Per-tenant key: HKDF-SHA256, salt = "cachekit_v1_" || u8 len(domain) || domain || u16BE len(tenant) || tenant, info = domain. */
export function deriveTenantKey(masterKey: Uint8Array, tenantId: string, domain = 'encryption'): Buffer {
  const d = Buffer.from(domain, 'utf8');
  const t = Buffer.from(tenantId, 'utf8');
  if (d.length > 0xff) throw new EncryptionError('malformed', 'key domain longer than 255 bytes');
  if (t.length > 0xffff) throw new EncryptionError('malformed', 'tenant id longer than 65535 bytes');
  const salt = Buffer.concat([Buffer.from('cachekit_v1_'), Uint8Array.of(d.length), d, Uint8Array.of(t.length >>> 8, t.length & 0xff), t]);
  return Buffer.from(hkdfSync('sha256', masterKey, salt, d, 32));
}

/** First 16 bytes of SHA-256("key_fingerprint_v1" || key). */
export function keyFingerprint(key: Uint8Array): Buffer {
  return createHash('sha256').update('key_fingerprint_v1').update(key).digest().subarray(0, FINGERPRINT_BYTES);
}

/** AAD v0x03: 0x03 || for tenant, cache key, format, "True"/"False": u32BE length || UTF-8 bytes. */
export function buildAad(ctx: EncryptionContext): Buffer {
  const fields = [ctx.tenantId, ctx.cacheKey, ctx.format ?? 'msgpack', ctx.compressed ? 'True' : 'False'].map((f) => Buffer.from(f, 'utf8'));
  const parts: Uint8Array[] = [Uint8Array.of(AAD_VERSION)];
  for (const f of fields) {
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32BE(f.length, 0);
    parts.push(len, f);
  }
  return Buffer.concat(parts);
}

/** AES-256-GCM: nonce(12) || ciphertext || tag(16). The nonce is random unless given (tests, vectors). */
export function sealFrame(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, nonce: Uint8Array = randomBytes(NONCE_BYTES)): Buffer {
  if (nonce.length !== NONCE_BYTES) throw new EncryptionError('malformed', 'nonce must be 12 bytes');
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  return Buffer.concat([nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

/** Opens nonce || ciphertext || tag; throws EncryptionError (authentication) on any tampering or wrong key/AAD. */
export function openFrame(key: Uint8Array, frame: Uint8Array, aad: Uint8Array): Buffer {
  if (frame.length < NONCE_BYTES + TAG_BYTES) throw new EncryptionError('malformed', 'cipher frame shorter than nonce and tag');
  const nonce = frame.subarray(0, NONCE_BYTES);
  const tag = frame.subarray(frame.length - TAG_BYTES);
  const body = frame.subarray(NONCE_BYTES, frame.length - TAG_BYTES);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch (error) {
    throw new EncryptionError('authentication', 'value failed authentication (tampered, moved to another key or tenant, or another key)', {
      cause: error,
    });
  }
}

function parseKey(option: string, value: Uint8Array | string, component = COMPONENT): Buffer {
  let bytes: Buffer;
  if (typeof value === 'string') {
    const hex = value.trim();
    // The key itself never goes into a message.
    if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new ConfigError(component, option, 'must be hex (an even number of 0-9a-f digits)');
    bytes = Buffer.from(hex, 'hex');
  } else if (value instanceof Uint8Array) {
    bytes = Buffer.from(value);
  } else {
    throw new ConfigError(component, option, 'must be a hex string or bytes');
  }
  if (bytes.length < 32) throw new ConfigError(component, option, `must be at least 32 bytes (64 hex digits), got ${bytes.length} bytes`);
  return bytes;
}

interface MasterKey {
  key: Buffer;
  tenantKeys: Map<string, { key: Buffer; fingerprint: Buffer }>;
}

/** Encrypts and decrypts cache values for tenants, with key rotation by fingerprint and a fail-open/closed read policy. */
export class Encryptor {
  readonly failClosed: boolean;
  private readonly current: MasterKey;
  private readonly previous: MasterKey[];

  constructor(options: EncryptionOptions) {
    assertKnownOptions(COMPONENT, options, ['masterKey', 'previousMasterKeys', 'failClosed']);
    if (options.masterKey === undefined) throw new ConfigError(COMPONENT, 'masterKey', 'is required');
    this.current = { key: parseKey('masterKey', options.masterKey), tenantKeys: new Map() };
    const previous = options.previousMasterKeys ?? [];
    if (!Array.isArray(previous)) throw new ConfigError(COMPONENT, 'previousMasterKeys', 'must be an array');
    if (previous.length > MAX_PREVIOUS_KEYS)
      throw new ConfigError(COMPONENT, 'previousMasterKeys', `holds at most ${MAX_PREVIOUS_KEYS} keys, got ${previous.length}`);
    this.previous = previous.map((k, i) => ({ key: parseKey(`previousMasterKeys[${i}]`, k), tenantKeys: new Map() }));
    this.failClosed = options.failClosed ?? false;
    if (typeof this.failClosed !== 'boolean') throw new ConfigError(COMPONENT, 'failClosed', 'must be a boolean');
  }

  /**
   * From CACHEKIT_MASTER_KEY, CACHEKIT_PREVIOUS_MASTER_KEYS and CACHEKIT_ENCRYPTION_FAIL_CLOSED (explicit options win);
   * undefined when no master key is set. A malformed variable throws a ConfigError naming it.
   */
  static fromEnv(env: NodeJS.ProcessEnv = processEnv(), overrides: Partial<EncryptionOptions> = {}): Encryptor | undefined {
    const master = overrides.masterKey ?? envKey(env, 'CACHEKIT_MASTER_KEY');
    if (master === undefined) return undefined;
    const raw = env.CACHEKIT_PREVIOUS_MASTER_KEYS?.trim();
    let previous = overrides.previousMasterKeys;
    if (previous === undefined && raw) {
      const keys = raw
        .split(',')
        .map((k) => k.trim())
        .filter((k) => k !== '');
      if (keys.length > MAX_PREVIOUS_KEYS) {
        throw new ConfigError('environment', 'CACHEKIT_PREVIOUS_MASTER_KEYS', `holds at most ${MAX_PREVIOUS_KEYS} keys, got ${keys.length}`);
      }
      previous = keys.map((k) => parseKey('CACHEKIT_PREVIOUS_MASTER_KEYS', k, 'environment'));
    }
    const failClosed = overrides.failClosed ?? envBoolean('CACHEKIT_ENCRYPTION_FAIL_CLOSED', env) ?? false;
    return new Encryptor({ masterKey: master, previousMasterKeys: previous ?? [], failClosed });
  }

  /** The fingerprint of the current key for a tenant (what entry frames carry). */
  fingerprint(tenantId: string): Buffer {
    return Buffer.from(this.tenantKey(this.current, tenantId).fingerprint);
  }

  /** An entry frame: header with the tenant key's fingerprint, then nonce || ciphertext || tag. */
  encrypt(plaintext: Uint8Array, ctx: EncryptionContext): Buffer {
    const { key, fingerprint } = this.tenantKey(this.current, ctx.tenantId);
    const header = Buffer.allocUnsafe(ENTRY_HEADER_BYTES);
    header[0] = MAGIC_0;
    header[1] = MAGIC_1;
    header[2] = VERSION;
    fingerprint.copy(header, 3);
    return Buffer.concat([header, sealFrame(key, plaintext, buildAad(ctx))]);
  }

  /** The plaintext of an entry frame; throws EncryptionError (malformed / unknown-key / authentication). */
  decrypt(frame: Uint8Array, ctx: EncryptionContext): Buffer {
    if (frame.length < ENTRY_HEADER_BYTES + NONCE_BYTES + TAG_BYTES || frame[0] !== MAGIC_0 || frame[1] !== MAGIC_1) {
      throw new EncryptionError('malformed', 'not an encrypted cachekit-next entry');
    }
    if (frame[2] !== VERSION) throw new EncryptionError('malformed', `unknown encrypted-entry version ${frame[2]}`);
    const fingerprint = frame.subarray(3, ENTRY_HEADER_BYTES);
    // Pick the key by fingerprint: one decryption attempt at most, never a trial over every key.
    for (const master of [this.current, ...this.previous]) {
      const candidate = this.tenantKey(master, ctx.tenantId);
      if (timingSafeEqual(candidate.fingerprint, fingerprint)) {
        return openFrame(candidate.key, frame.subarray(ENTRY_HEADER_BYTES), buildAad(ctx));
      }
    }
    throw new EncryptionError('unknown-key', 'value was encrypted with a key that is neither current nor a previous master key');
  }

  /**
   * The read policy: the plaintext, or, when it cannot be decrypted, a miss (null) after `evict` removed the entry;
   * in fail-closed mode the EncryptionError is thrown instead (and nothing is evicted).
   */
  async decryptOrEvict(frame: Uint8Array, ctx: EncryptionContext, evict: () => Promise<unknown> | unknown): Promise<Buffer | null> {
    try {
      return this.decrypt(frame, ctx);
    } catch (error) {
      if (this.failClosed || !(error instanceof EncryptionError)) throw error;
      await evict();
      return null;
    }
  }

  /** Interop mode: the bare cipher frame over the plain MessagePack value (format msgpack, not compressed), current key. */
  encryptInterop(plaintext: Uint8Array, tenantId: string, cacheKey: string, nonce?: Uint8Array): Buffer {
    const { key } = this.tenantKey(this.current, tenantId);
    return sealFrame(key, plaintext, buildAad({ tenantId, cacheKey, format: 'msgpack', compressed: false }), nonce);
  }

  /** Interop mode: opens a bare cipher frame with the current key (interop frames carry no fingerprint). */
  decryptInterop(frame: Uint8Array, tenantId: string, cacheKey: string): Buffer {
    const { key } = this.tenantKey(this.current, tenantId);
    return openFrame(key, frame, buildAad({ tenantId, cacheKey, format: 'msgpack', compressed: false }));
  }

  private tenantKey(master: MasterKey, tenantId: string): { key: Buffer; fingerprint: Buffer } {
    let entry = master.tenantKeys.get(tenantId);
    if (entry === undefined) {
      const key = deriveTenantKey(master.key, tenantId);
      entry = { key, fingerprint: keyFingerprint(key) };
      // Bounded: many tenants only cost re-derivations, never unbounded memory.
      if (master.tenantKeys.size >= MAX_CACHED_TENANT_KEYS) master.tenantKeys.clear();
      master.tenantKeys.set(tenantId, entry);
    }
    return entry;
  }
}

function envKey(env: NodeJS.ProcessEnv, name: string): Buffer | undefined {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return undefined;
  return parseKey(name, raw, 'environment');
}
