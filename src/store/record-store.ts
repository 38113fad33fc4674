/**
 * How `cache(fn)` records become stored bytes, in three forms over one TieredCache:
 *
 * - plain:   the record `[e, s, f, t, v]` as MessagePack (typed-value.ts: a hit returns what the miss returned, type
 *            for type) in cachekit's ByteStorage envelope with the format `cachekit-next/2` (LZ4 block, xxHash3-64
 *            checksum verified on every L2 read: a corrupt value is a miss, never a wrong value); the L1 holds the
 *            record's MessagePack, decoded afresh for every caller.
 * - sealed:  the same envelope encrypted, as cachekit does (AES-256-GCM entry frame, AAD = tenant + cache key + format +
 *            compressed); the L1 holds the ciphertext and every read, L1 hits included, decrypts. A value that fails to
 *            decrypt is a miss and is evicted (fail-open), or an EncryptionError for the caller (fail-closed).
 * - interop: the value alone as canonical MessagePack (optionally a bare cipher frame), exactly what a Python cachekit
 *            service in interop mode writes under the same key; freshness is the backend TTL. The L1 holds the
 *            bytes (with encryption the ciphertext, a sealed cache as above), decoded afresh for every caller.
 *
 * Records written before values were typed (envelope format `msgpack`, a map `{ e, v, s, f, t }` whose Maps had
 * become objects and Sets arrays) cannot tell what their values were: they read as a quiet miss, and the next call
 * overwrites them. Releases before this one read today's records as undecodable (their reported miss), never as a
 * value.
 */
import type { Backend } from '../protocol/backend.js';
import { assertBounded } from '../wire/frame.js';
import type { EncryptionContext, Encryptor } from '../wire/encryption.js';
import { createEnvelopeFormat, type EnvelopeFormat } from '../wire/envelope.js';
import { clearCipher, entryCipher, interopCipher, SealedCache } from './sealed.js';
import { decodeInteropValue, encodeInteropValue, reviveInteropDates } from '../wire/interop.js';
import { bytesSerializer, type Serializer } from '../wire/frame.js';
import { TieredCache, type ErrorContext, type HitSource, type L1Options } from './tiered.js';
import { decodeValue, encodeWithHeader } from '../wire/typed-value.js';
import type { BreakerOptions } from './breaker.js';

/** What `cache(fn)` stores per entry: value, stored-at ms, fresh-until ms, expires-at ms (end of the TTL), tags. */
export interface StoredRecord {
  v: unknown;
  s: number;
  f: number;
  e?: number;
  t?: string[];
}

export interface RecordStore {
  readonly tiered: TieredCache<unknown>;
  /** The record under `key`, or null (miss, undecodable, or undecryptable in fail-open mode). */
  lookup(key: string, tenant: string): Promise<{ record: StoredRecord; source: HitSource } | null>;
  set(key: string, record: StoredRecord, tenant: string, ttlSeconds: number): Promise<boolean>;
}

export interface TieredSettings {
  backend: Backend | null;
  l1: L1Options | false;
  timeoutMs: number;
  /** `true` or settings: the backend's shared breaker; `false`: none. */
  breaker: boolean | BreakerOptions;
  name: string;
  /** Backend faults; the TieredCache logs them when absent. */
  onError?: (error: Error, context: ErrorContext) => void;
}

// The envelope's xxHash3 is WebAssembly, loaded once; stores await it before their first encode or decode.
let envelope: EnvelopeFormat | undefined;
let envelopeLoading: Promise<void> | undefined;
function loadEnvelope(): Promise<void> {
  return (envelopeLoading ??= createEnvelopeFormat().then((codec) => void (envelope = codec)));
}

/** Starts loading the envelope's checksum (WebAssembly) ahead of the first encode or decode; a failure surfaces there. */
export function preloadRecordFormat(): void {
  loadEnvelope().catch(() => {});
}

/** The envelope format of records: `[e, s, f, t, v]` in value-codec's MessagePack. */
export const RECORD_FORMAT = 'cachekit-next/2';
/** The envelope format of records before values were typed: read as a miss, never decoded. */
const LEGACY_FORMAT = 'msgpack';
/** What a legacy record reads as: past its time, so the core computes and overwrites it. */
const EXPIRED: StoredRecord = Object.freeze({ v: undefined, s: 0, f: -Infinity, e: 0 });

export function encodeRecord(record: StoredRecord): Uint8Array {
  return encodeWithHeader([record.e ?? null, record.s, record.f, record.t ?? null], record.v);
}

export function decodeRecord(payload: Uint8Array): StoredRecord {
  const fields = decodeValue(payload) as unknown[];
  if (!Array.isArray(fields) || fields.length !== 5) throw new Error('not a cached-function record');
  const [e, s, f, t, v] = fields;
  if (typeof s !== 'number' || typeof f !== 'number' || (e !== null && typeof e !== 'number') || (t !== null && !Array.isArray(t))) {
    throw new Error('not a cached-function record');
  }
  return { v, s, f, ...(e === null ? {} : { e }), ...(t === null ? {} : { t: t as string[] }) };
}

/**
 * The record's MessagePack, or `null` for a legacy record. Its declared lengths are checked here, once per read from
 * the L2 (a hostile length must not make msgpackr allocate), not on every L1 hit of the same bytes.
 */
function openEnvelope(bytes: Uint8Array): Uint8Array | null {
  const { data, format } = envelope!.decode(bytes);
  if (format === LEGACY_FORMAT) return null;
  if (format !== RECORD_FORMAT) throw new Error(`envelope format ${JSON.stringify(format)} is not ${RECORD_FORMAT}`);
  assertBounded(data);
  return data;
}

const recordCodec: Serializer<StoredRecord> = {
  encode: (record) => envelope!.encode(encodeRecord(record), RECORD_FORMAT),
  decode: (bytes) => {
    const payload = openEnvelope(bytes);
    return payload ? decodeRecord(payload) : EXPIRED;
  },
};

/**
 * A plain record as the L1 keeps it: its MessagePack (checked once, when read from the L2) and its expiry. Every call
 * decodes its own copy, so a caller that mutates what it got never changes what the next caller gets. `payload` is
 * null for a legacy record (a miss; its expiry 0 keeps it out of the L1).
 */
interface PlainSlot {
  payload: Uint8Array | null;
  e: number | null;
}

/**
 * The expiry of a record without decoding it: the record is an array of 5 with `e` first, so the MessagePack starts
 * `95` and the number follows. `undefined` when the bytes have another shape (then they are decoded).
 */
export function peekExpiry(payload: Uint8Array): number | null | undefined {
  if (payload.length < 2 || payload[0] !== 0x95) return undefined;
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const type = payload[1]!;
  if (type === 0xc0) return null;
  if (type <= 0x7f) return type;
  if (type === 0xcb && payload.length >= 10) return view.getFloat64(2);
  if (type === 0xcf && payload.length >= 10) return Number(view.getBigUint64(2));
  if (type === 0xce && payload.length >= 6) return view.getUint32(2);
  if (type === 0xcd && payload.length >= 4) return view.getUint16(2);
  if (type === 0xcc && payload.length >= 3) return payload[2]!;
  return undefined;
}

const slotCodec: Serializer<PlainSlot> = {
  encode: (slot) => envelope!.encode(slot.payload!, RECORD_FORMAT),
  decode: (bytes) => {
    const payload = openEnvelope(bytes);
    if (!payload) return { payload: null, e: 0 };
    const peeked = peekExpiry(payload);
    return { payload, e: peeked !== undefined ? peeked : (decodeRecord(payload).e ?? null) };
  },
};

function tieredOf<T>(settings: TieredSettings, codec: Serializer<T>, expiresAt?: (value: T) => number | null | undefined): TieredCache<T> {
  return new TieredCache<T>({
    ...(expiresAt ? { expiresAt } : {}),
    backend: settings.backend,
    serializer: codec,
    l1: settings.l1,
    timeoutMs: settings.timeoutMs,
    breaker: settings.breaker === false ? false : settings.breaker === true ? undefined : settings.breaker,
    name: settings.name,
    ...(settings.onError ? { onError: settings.onError } : {}),
  });
}

export function plainStore(settings: TieredSettings): RecordStore {
  // Records know when their TTL ends: an L2 read is one GET, no TTL query.
  const tiered = tieredOf(settings, slotCodec, (slot) => slot.e);
  return {
    tiered: tiered as TieredCache<unknown>,
    async lookup(key) {
      if (!envelope) await loadEnvelope();
      const hit = await tiered.lookup(key);
      return hit?.value.payload ? { record: decodeRecord(hit.value.payload), source: hit.source } : null;
    },
    async set(key, record, _tenant, ttlSeconds) {
      if (!envelope) await loadEnvelope();
      return tiered.set(key, { payload: encodeRecord(record), e: record.e ?? null }, ttlSeconds);
    },
  };
}

/** The AAD fields of a sealed record: cachekit's, for an enveloped (compressed) MessagePack plaintext. */
const sealedContext = (cacheKey: string, tenantId: string): EncryptionContext => ({ tenantId, cacheKey, format: 'msgpack', compressed: true });

/**
 * Sealed bytes and interop values cannot tell their expiry: reads skip the TTL query and the L1 copy is bounded
 * (5 s, or l1.maxTtlSeconds; a sealed record is checked for freshness on every read anyway).
 */
const opaque = (): undefined => undefined;

export function sealedStore(settings: TieredSettings, encryptor: Encryptor): RecordStore {
  const tiered = tieredOf(settings, bytesSerializer, opaque);
  const sealed = new SealedCache(tiered, recordCodec, entryCipher(encryptor, sealedContext));
  return {
    tiered: tiered as TieredCache<unknown>,
    async lookup(key, tenant) {
      if (!envelope) await loadEnvelope();
      return sealed.lookup(key, tenant).then((hit) => hit && { record: hit.value, source: hit.source });
    },
    async set(key, record, tenant, ttlSeconds) {
      if (!envelope) await loadEnvelope();
      return sealed.set(key, record, ttlSeconds, tenant);
    },
  };
}

/**
 * One canonical MessagePack document; anything else (another writer's format) fails to decode: a miss. Datetime
 * sentinels come back as Dates, so a hit returns what the loader's miss returned.
 */
const interopCodec: Serializer<unknown> = { encode: encodeInteropValue, decode: (bytes) => reviveInteropDates(decodeInteropValue(bytes)) };

/** Interop entries have no stored-at or fresh-until: present means fresh, the backend TTL ends them. */
export function interopStore(settings: TieredSettings, encryptor: Encryptor | null): RecordStore {
  // The L1 keeps the bytes (ciphertext with encryption) and every call decodes its own copy. Their TTL is not queried
  // either: an interop L1 copy lives 1 s by default (cache(fn) sets l1.maxTtlSeconds).
  const tiered = tieredOf(settings, bytesSerializer, opaque);
  const cache = new SealedCache(tiered, interopCodec, encryptor ? interopCipher(encryptor) : clearCipher);
  return {
    tiered: tiered as TieredCache<unknown>,
    lookup: (key, tenant) => cache.lookup(key, tenant).then((hit) => hit && { record: { v: hit.value, s: 0, f: Infinity }, source: hit.source }),
    set: (key, stored, tenant, ttlSeconds) => cache.set(key, stored.v, ttlSeconds, tenant),
  };
}
