/**
 * A 'use cache' entry <-> bytes: the buffered value stream as raw bytes plus the entry's metadata, MessagePack in the
 * same frame as every other cachekit-next entry (deflated above the threshold).
 */
import { frame, packValue, unframe, unpackValue, type CompressionOptions, type Serializer } from './frame.js';

/** What the 'use cache' handler keeps per key: Next's `CacheEntry` with the stream consumed into bytes. */
export interface UseCacheStoredEntry {
  /** The bytes the entry's value stream delivered, in order. */
  value: Uint8Array;
  /** The entry's own tags (`cacheTag`), soft tags excluded. */
  tags: string[];
  /** Client stale time, in seconds. */
  stale: number;
  /** When Next created the entry (epoch ms). */
  timestamp: number;
  /** Hard limit after `timestamp`, in seconds (0xfffffffe and above: never). */
  expire: number;
  /** Background refresh after `timestamp`, in seconds. */
  revalidate: number;
}

/** Schema marker under `u` (legacy entries use `v`), so neither kind ever decodes as the other. */
const SCHEMA = 1;

export function useCacheEntrySerializer(compression: CompressionOptions = {}): Serializer<UseCacheStoredEntry> {
  return {
    encode(entry) {
      return frame(
        packValue({ u: SCHEMA, b: entry.value, t: entry.tags, s: entry.stale, ts: entry.timestamp, e: entry.expire, r: entry.revalidate }),
        compression,
      );
    },
    decode(bytes) {
      const packed = unpackValue(unframe(bytes)) as Record<string, unknown> | null;
      if (packed === null || typeof packed !== 'object' || packed.u !== SCHEMA) {
        throw new Error(`not a 'use cache' entry (schema ${JSON.stringify((packed as Record<string, unknown> | null)?.u)})`);
      }
      const { b, t, s, ts, e, r } = packed;
      if (
        !(b instanceof Uint8Array) ||
        !Array.isArray(t) ||
        typeof s !== 'number' ||
        typeof ts !== 'number' ||
        typeof e !== 'number' ||
        typeof r !== 'number'
      ) {
        throw new Error("malformed 'use cache' entry");
      }
      return { value: b, tags: t as string[], stale: s, timestamp: ts, expire: e, revalidate: r };
    },
  };
}
