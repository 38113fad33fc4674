import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/shared/options.js';
import { buildAad, deriveTenantKey, EncryptionError, Encryptor, keyFingerprint, openFrame, sealFrame } from '../../src/wire/encryption.js';
import { decodeInteropValue, encodeInteropValue } from '../../src/wire/interop.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import type { Backend } from '../../src/protocol/backend.js';
import { backendKeyPrefix, entryCipher, SealedCache } from '../../src/store/sealed.js';
import { TieredCache } from '../../src/store/tiered.js';
import { bytesSerializer } from '../../src/wire/frame.js';
import { hex, loadOurVectors, loadVectors, toHex } from './vectors.js';

const interop = loadVectors('interop-mode.json');
const ours = loadOurVectors();
const KEY_A = 'aa'.repeat(32);
const KEY_B = 'bb'.repeat(32);
const KEY_C = 'cc'.repeat(32);
const ctx = { tenantId: 'tenant-1', cacheKey: 'users:get_user:abc' };

function kindOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(EncryptionError);
    return (error as EncryptionError).kind;
  }
  return 'no error';
}

describe('interop-mode.json aad and encryption vectors', () => {
  for (const v of interop.aad_vectors) {
    it(`aad: ${v.name}`, () => {
      expect(toHex(buildAad({ tenantId: v.tenant_id, cacheKey: v.cache_key, format: v.format, compressed: v.compressed }))).toBe(v.aad_hex);
    });
  }
  for (const v of interop.encryption_vectors) {
    it(`encryption: ${v.name}`, () => {
      const master = hex(v.master_key_hex);
      const tenantKey = deriveTenantKey(master, v.tenant_id);
      expect(toHex(keyFingerprint(tenantKey))).toBe(v.derived_key_fingerprint_hex);
      const aad = buildAad({ tenantId: v.tenant_id, cacheKey: v.cache_key, format: v.format, compressed: v.compressed });
      expect(toHex(aad)).toBe(v.aad_hex);
      expect(toHex(sealFrame(tenantKey, hex(v.plaintext_hex), aad, hex(v.nonce_hex)))).toBe(v.ciphertext_hex);
      expect(toHex(openFrame(tenantKey, hex(v.ciphertext_hex), aad))).toBe(v.plaintext_hex);
      // The same through the Encryptor's interop methods, down to the value.
      const enc = new Encryptor({ masterKey: v.master_key_hex });
      expect(toHex(enc.encryptInterop(hex(v.plaintext_hex), v.tenant_id, v.cache_key, hex(v.nonce_hex)))).toBe(v.ciphertext_hex);
      expect(decodeInteropValue(enc.decryptInterop(hex(v.ciphertext_hex), v.tenant_id, v.cache_key))).toEqual({ name: 'alice', age: 30 });
      expect(toHex(encodeInteropValue({ name: 'alice', age: 30 }))).toBe(v.plaintext_hex);
      expect(enc.fingerprint(v.tenant_id).toString('hex')).toBe(v.derived_key_fingerprint_hex);
    });
  }
});

describe('our aad vector: the AAD binds the logical backend key, every client-side prefix included', () => {
  const v = ours.aad_vectors[0];
  const logical = v.backend_key_prefix + v.key;
  const aadOf = (cacheKey: string) => buildAad({ tenantId: v.tenant_id, cacheKey, format: v.format, compressed: v.compressed });
  // The vector's cipher frame behind this project's entry header (magic, version, fingerprint).
  const entryFrame = Buffer.concat([Buffer.from([0x63, 0x45, 0x01]), hex(v.derived_key_fingerprint_hex), hex(v.cipher_frame_hex)]);
  const context = (cacheKey: string, tenantId: string) => ({ tenantId, cacheKey, format: v.format, compressed: v.compressed });

  /** A custom backend that prefixes its keys and says so with `keyPrefix`, as RedisBackend and MemcachedBackend do. */
  function prefixed(store: MemoryBackend, prefix: string): Backend {
    return {
      keyPrefix: prefix,
      get: (key) => store.get(prefix + key),
      set: (key, value, ttl) => store.set(prefix + key, value, ttl),
      delete: (key) => store.delete(prefix + key),
      exists: (key) => store.exists(prefix + key),
      healthCheck: () => store.healthCheck(),
    };
  }
  const sealedOn = (backend: Backend, failClosed = false) =>
    new SealedCache(
      new TieredCache<Uint8Array>({ backend, serializer: bytesSerializer, l1: false }),
      bytesSerializer,
      entryCipher(new Encryptor({ masterKey: v.master_key_hex, failClosed }), context),
      v.tenant_id,
    );

  it('aad and cipher frame are the vector bytes; the frame opens under the prefixed key only', () => {
    expect(toHex(aadOf(logical))).toBe(v.aad_hex);
    expect(toHex(keyFingerprint(deriveTenantKey(hex(v.master_key_hex), v.tenant_id)))).toBe(v.derived_key_fingerprint_hex);
    const key = deriveTenantKey(hex(v.master_key_hex), v.tenant_id);
    expect(toHex(sealFrame(key, hex(v.plaintext_hex), aadOf(logical), hex(v.nonce_hex)))).toBe(v.cipher_frame_hex);
    const encryptor = new Encryptor({ masterKey: v.master_key_hex });
    expect(toHex(encryptor.decrypt(entryFrame, context(logical, v.tenant_id)))).toBe(v.plaintext_hex);
    expect(kindOf(() => encryptor.decrypt(entryFrame, context(v.key, v.tenant_id)))).toBe('authentication');
  });

  it("a sealed cache reads the backend's keyPrefix and binds it: the vector entry is read, its bare-key twin is not", async () => {
    const store = new MemoryBackend();
    expect(backendKeyPrefix(prefixed(store, v.backend_key_prefix))).toBe(v.backend_key_prefix);
    expect(backendKeyPrefix(store)).toBe('');
    const cache = sealedOn(prefixed(store, v.backend_key_prefix));
    await store.set(logical, entryFrame, 60);
    expect(toHex((await cache.get(v.key))!)).toBe(v.plaintext_hex);
    // What it writes opens with the prefixed AAD, and with the bare key fails: no reader may fall back to it.
    await cache.set(v.key, hex('c3'), 60);
    const written = (await store.get(logical))!;
    const encryptor = new Encryptor({ masterKey: v.master_key_hex });
    expect(toHex(encryptor.decrypt(written, context(logical, v.tenant_id)))).toBe('c3');
    expect(kindOf(() => encryptor.decrypt(written, context(v.key, v.tenant_id)))).toBe('authentication');
  });

  it('an entry sealed over the bare key (what was written before) is a miss and evicted, or an error fail-closed; never opened', async () => {
    const store = new MemoryBackend();
    const legacy = new Encryptor({ masterKey: v.master_key_hex }).encrypt(hex('c3'), context(v.key, v.tenant_id));
    await store.set(logical, legacy, 60);
    await expect(sealedOn(prefixed(store, v.backend_key_prefix), true).get(v.key)).rejects.toBeInstanceOf(EncryptionError);
    expect(await store.exists(logical)).toBe(true);
    expect(await sealedOn(prefixed(store, v.backend_key_prefix)).get(v.key)).toBeNull();
    expect(await store.exists(logical)).toBe(false);
    // Moved under another prefix of the same store: fails too.
    await sealedOn(prefixed(store, 'app-a:')).set('k', hex('c3'), 60);
    await store.set('app-b:k', (await store.get('app-a:k'))!, 60);
    expect(await sealedOn(prefixed(store, 'app-b:')).get('k')).toBeNull();
    expect(toHex((await sealedOn(prefixed(store, 'app-a:')).get('k'))!)).toBe('c3');
  });
});

describe('Encryptor entry frames', () => {
  const enc = new Encryptor({ masterKey: KEY_A });
  const plaintext = Buffer.from('the value: an envelope or any bytes');

  it('round-trips and uses a fresh nonce each time', () => {
    const a = enc.encrypt(plaintext, ctx);
    const b = enc.encrypt(plaintext, ctx);
    expect(a.equals(b)).toBe(false);
    expect(enc.decrypt(a, ctx).equals(plaintext)).toBe(true);
    expect(a.subarray(3, 19).equals(enc.fingerprint(ctx.tenantId))).toBe(true);
    expect(enc.decrypt(enc.encrypt(Buffer.alloc(0), ctx), ctx).length).toBe(0);
  });

  it('rejects a tampered byte anywhere', () => {
    const frame = enc.encrypt(plaintext, ctx);
    for (let i = 0; i < frame.length; i++) {
      const bad = Buffer.from(frame);
      bad[i]! ^= 0x80;
      const kind = kindOf(() => enc.decrypt(bad, ctx));
      // header bytes: malformed; fingerprint: unknown key (no trial decryption); nonce, body, tag: authentication.
      expect(kind, `byte ${i}`).toBe(i < 3 ? 'malformed' : i < 19 ? 'unknown-key' : 'authentication');
    }
    for (const cut of [0, 1, 18, 19, 30, frame.length - 1]) expect(() => enc.decrypt(frame.subarray(0, cut), ctx)).toThrow(EncryptionError);
    expect(kindOf(() => enc.decrypt(Buffer.concat([frame, Buffer.of(0)]), ctx))).toBe('authentication');
  });

  it('rejects a value moved to another cache key, another tenant, or another format/compression', () => {
    const frame = enc.encrypt(plaintext, ctx);
    expect(kindOf(() => enc.decrypt(frame, { ...ctx, cacheKey: 'users:get_user:abd' }))).toBe('authentication');
    // Another tenant derives another key: the fingerprint does not match.
    expect(kindOf(() => enc.decrypt(frame, { ...ctx, tenantId: 'tenant-2' }))).toBe('unknown-key');
    expect(kindOf(() => enc.decrypt(frame, { ...ctx, compressed: true }))).toBe('authentication');
    expect(kindOf(() => enc.decrypt(frame, { ...ctx, format: 'json' }))).toBe('authentication');
  });

  it('rejects a frame written with another master key', () => {
    const other = new Encryptor({ masterKey: KEY_B });
    expect(kindOf(() => other.decrypt(enc.encrypt(plaintext, ctx), ctx))).toBe('unknown-key');
  });

  it('reads values of a previous master key after rotation, picked by fingerprint; writes with the new one', () => {
    const old = new Encryptor({ masterKey: KEY_A });
    const frame = old.encrypt(plaintext, ctx);
    const rotated = new Encryptor({ masterKey: KEY_C, previousMasterKeys: [KEY_B, KEY_A] });
    expect(rotated.decrypt(frame, ctx).equals(plaintext)).toBe(true);
    const fresh = rotated.encrypt(plaintext, ctx);
    expect(fresh.subarray(3, 19).equals(new Encryptor({ masterKey: KEY_C }).fingerprint(ctx.tenantId))).toBe(true);
    expect(kindOf(() => old.decrypt(fresh, ctx))).toBe('unknown-key');
    // Once the old key is dropped, its values are unreadable.
    expect(kindOf(() => new Encryptor({ masterKey: KEY_C, previousMasterKeys: [KEY_B] }).decrypt(frame, ctx))).toBe('unknown-key');
  });

  it('fail-open: a bad value is a miss and is evicted; fail-closed: an error and nothing evicted', async () => {
    const frame = Buffer.from(enc.encrypt(plaintext, ctx));
    frame[frame.length - 1]! ^= 1;
    const evicted: string[] = [];
    await expect(enc.decryptOrEvict(frame, ctx, () => evicted.push(ctx.cacheKey))).resolves.toBeNull();
    expect(evicted).toEqual([ctx.cacheKey]);
    await expect(enc.decryptOrEvict(enc.encrypt(plaintext, ctx), ctx, () => evicted.push('no'))).resolves.toEqual(plaintext);
    expect(evicted).toHaveLength(1);
    const closed = new Encryptor({ masterKey: KEY_A, failClosed: true });
    await expect(closed.decryptOrEvict(frame, ctx, () => evicted.push('no'))).rejects.toBeInstanceOf(EncryptionError);
    expect(evicted).toHaveLength(1);
  });

  it('interop frames use the current key only', () => {
    const a = new Encryptor({ masterKey: KEY_A });
    const frame = a.encryptInterop(Buffer.from('81a161c3', 'hex'), 't', 'ns:op:x');
    expect(toHex(a.decryptInterop(frame, 't', 'ns:op:x'))).toBe('81a161c3');
    expect(() => new Encryptor({ masterKey: KEY_B, previousMasterKeys: [KEY_A] }).decryptInterop(frame, 't', 'ns:op:x')).toThrow(EncryptionError);
    expect(() => a.decryptInterop(frame, 't', 'ns:op:y')).toThrow(EncryptionError);
  });
});

describe('configuration', () => {
  it('reads the environment', () => {
    expect(Encryptor.fromEnv({})).toBeUndefined();
    const enc = Encryptor.fromEnv({ CACHEKIT_MASTER_KEY: KEY_A, CACHEKIT_PREVIOUS_MASTER_KEYS: `${KEY_B}, ${KEY_C}`, CACHEKIT_ENCRYPTION_FAIL_CLOSED: 'true' });
    expect(enc?.failClosed).toBe(true);
    const frame = new Encryptor({ masterKey: KEY_C }).encrypt(Buffer.from('x'), ctx);
    expect(enc?.decrypt(frame, ctx).toString()).toBe('x');
  });
  it('names the malformed variable and never echoes the key', () => {
    const cases: [Record<string, string>, string][] = [
      [{ CACHEKIT_MASTER_KEY: 'zz'.repeat(32) }, 'CACHEKIT_MASTER_KEY'],
      [{ CACHEKIT_MASTER_KEY: 'ab'.repeat(31) }, 'CACHEKIT_MASTER_KEY'],
      [{ CACHEKIT_MASTER_KEY: 'abc' }, 'CACHEKIT_MASTER_KEY'],
      [{ CACHEKIT_MASTER_KEY: KEY_A, CACHEKIT_PREVIOUS_MASTER_KEYS: '1234' }, 'CACHEKIT_PREVIOUS_MASTER_KEYS'],
      [{ CACHEKIT_MASTER_KEY: KEY_A, CACHEKIT_PREVIOUS_MASTER_KEYS: [KEY_A, KEY_B, KEY_C, KEY_A].join(',') }, 'CACHEKIT_PREVIOUS_MASTER_KEYS'],
      [{ CACHEKIT_MASTER_KEY: KEY_A, CACHEKIT_ENCRYPTION_FAIL_CLOSED: 'maybe' }, 'CACHEKIT_ENCRYPTION_FAIL_CLOSED'],
    ];
    for (const [env, name] of cases) {
      let caught: unknown;
      try {
        Encryptor.fromEnv(env);
      } catch (error) {
        caught = error;
      }
      expect(caught, name).toBeInstanceOf(ConfigError);
      expect((caught as ConfigError).option).toBe(name);
      expect((caught as Error).message).toContain(name);
      expect((caught as Error).message).not.toContain(env.CACHEKIT_MASTER_KEY!.slice(0, 40));
    }
  });
  it('validates constructor options', () => {
    expect(() => new Encryptor({ masterKey: randomBytes(16) })).toThrow(ConfigError);
    expect(() => new Encryptor({ masterKey: KEY_A, previousMasterKeys: [KEY_B, KEY_B, KEY_B, KEY_B] })).toThrow(ConfigError);
    expect(() => new Encryptor({ masterKey: KEY_A, failclosed: true } as never)).toThrow(ConfigError);
    expect(new Encryptor({ masterKey: randomBytes(48) }).encrypt(Buffer.from('x'), ctx).length).toBe(19 + 12 + 1 + 16);
  });
});
