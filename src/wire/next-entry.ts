/**
 * Next.js cache values <-> bytes. Every kind has an explicit field layout, so Buffers stay binary (no base64, no
 * `{type:'Buffer',data}`), `segmentData` comes back as a real `Map`, and HTML is stored as UTF-8 bytes (decoding
 * bytes to a string natively is much faster than decoding a MessagePack string).
 */
import { frame, packValue, unframe, unpackValue, type CompressionOptions, type Serializer } from './frame.js';
import type { CacheControl, IncrementalCacheValue } from './next-types.js';

/** What the handler keeps per key, in L1 as is and in L2 encoded. */
export interface HandlerEntry {
  /** When the value was produced (epoch ms). */
  lastModified: number;
  cacheControl?: CacheControl;
  /** The tags this entry answers to (for pages: `x-next-cache-tags`; for fetches: the fetch's tags). */
  tags: string[];
  value: IncrementalCacheValue | null;
}

const SCHEMA = 1;

type Packed = Record<string, unknown>;

const asBuffer = (value: unknown): Buffer => {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new Error(`expected bytes, got ${typeof value}`);
};

const utf8 = (text: string): Buffer => Buffer.from(text, 'utf8');

/** Sets `field` only when `value` is defined: MessagePack has no `undefined`, and absent is what Next had. */
function put(target: Packed, field: string, value: unknown): void {
  if (value !== undefined) target[field] = value;
}

/** `base64` as bytes when that round-trips exactly (it does for what Next writes), else `undefined`. */
function base64Bytes(base64: string): Buffer | undefined {
  const bytes = Buffer.from(base64, 'base64');
  return bytes.toString('base64') === base64 ? bytes : undefined;
}

export function packNextValue(value: IncrementalCacheValue): Packed {
  const out: Packed = { k: value.kind };
  switch (value.kind) {
    case 'APP_PAGE':
      out.h = utf8(value.html);
      put(out, 'r', value.rscData);
      put(out, 'hd', value.headers);
      put(out, 'p', value.postponed);
      put(out, 's', value.status);
      if (value.segmentData) out.sd = [...value.segmentData.entries()];
      return out;
    case 'APP_ROUTE':
      out.b = value.body;
      put(out, 's', value.status);
      put(out, 'hd', value.headers);
      return out;
    case 'PAGES':
      out.h = utf8(value.html);
      put(out, 'd', value.pageData);
      put(out, 'hd', value.headers);
      put(out, 's', value.status);
      return out;
    case 'FETCH': {
      const { headers, body, url, status } = value.data;
      put(out, 'hd', headers);
      const bytes = typeof body === 'string' ? base64Bytes(body) : undefined;
      if (bytes) out.b = bytes;
      else put(out, 'bs', body);
      put(out, 'u', url);
      put(out, 's', status);
      put(out, 't', value.tags);
      put(out, 'rv', value.revalidate);
      return out;
    }
    case 'REDIRECT':
      put(out, 'pr', value.props);
      return out;
    case 'IMAGE':
      put(out, 'et', value.etag);
      put(out, 'ue', value.upstreamEtag);
      out.b = value.buffer;
      put(out, 'x', value.extension);
      put(out, 'rv', value.revalidate);
      return out;
    default:
      throw new Error(`unsupported cache value kind ${JSON.stringify((value as { kind?: unknown }).kind)}`);
  }
}

export function unpackNextValue(packed: Packed): IncrementalCacheValue {
  const has = (field: string) => packed[field] !== undefined;
  switch (packed.k) {
    case 'APP_PAGE': {
      const value: Record<string, unknown> = { kind: 'APP_PAGE', html: asBuffer(packed.h).toString('utf8') };
      if (has('r')) value.rscData = asBuffer(packed.r);
      if (has('hd')) value.headers = packed.hd;
      if (has('p')) value.postponed = packed.p;
      if (has('s')) value.status = packed.s;
      if (has('sd')) {
        value.segmentData = new Map((packed.sd as [string, unknown][]).map(([path, data]) => [path, asBuffer(data)]));
      }
      return value as unknown as IncrementalCacheValue;
    }
    case 'APP_ROUTE':
      return { kind: 'APP_ROUTE', body: asBuffer(packed.b), status: packed.s as number, headers: (packed.hd ?? {}) as never };
    case 'PAGES': {
      const value: Record<string, unknown> = { kind: 'PAGES', html: asBuffer(packed.h).toString('utf8'), pageData: packed.d };
      if (has('hd')) value.headers = packed.hd;
      if (has('s')) value.status = packed.s;
      return value as unknown as IncrementalCacheValue;
    }
    case 'FETCH': {
      const data: Record<string, unknown> = {
        headers: packed.hd ?? {},
        body: has('b') ? asBuffer(packed.b).toString('base64') : packed.bs,
        url: packed.u,
      };
      if (has('s')) data.status = packed.s;
      const value: Record<string, unknown> = { kind: 'FETCH', data, revalidate: packed.rv };
      if (has('t')) value.tags = packed.t;
      return value as unknown as IncrementalCacheValue;
    }
    case 'REDIRECT':
      return { kind: 'REDIRECT', props: packed.pr };
    case 'IMAGE': {
      const value: Record<string, unknown> = {
        kind: 'IMAGE',
        etag: packed.et,
        upstreamEtag: packed.ue,
        buffer: asBuffer(packed.b),
        extension: packed.x,
      };
      if (has('rv')) value.revalidate = packed.rv;
      return value as unknown as IncrementalCacheValue;
    }
    default:
      throw new Error(`unknown stored value kind ${JSON.stringify(packed.k)}`);
  }
}

export function handlerEntrySerializer(compression: CompressionOptions = {}): Serializer<HandlerEntry> {
  return {
    encode(entry) {
      const packed: Packed = { v: SCHEMA, m: entry.lastModified, t: entry.tags, x: entry.value === null ? null : packNextValue(entry.value) };
      if (entry.cacheControl) packed.c = entry.cacheControl;
      return frame(packValue(packed), compression);
    },
    decode(bytes) {
      const packed = unpackValue(unframe(bytes)) as Packed;
      if (packed === null || typeof packed !== 'object' || packed.v !== SCHEMA) {
        throw new Error(`unsupported entry schema ${JSON.stringify((packed as Packed | null)?.v)}`);
      }
      if (typeof packed.m !== 'number' || !Array.isArray(packed.t)) throw new Error('malformed entry header');
      const entry: HandlerEntry = {
        lastModified: packed.m,
        tags: packed.t as string[],
        value: packed.x === null || packed.x === undefined ? null : unpackNextValue(packed.x as Packed),
      };
      if (packed.c) entry.cacheControl = packed.c as CacheControl;
      return entry;
    },
  };
}
