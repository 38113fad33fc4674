/**
 * What an L1 entry costs in memory, estimated from above: the L1's byte budget counts this, not the stored (often
 * compressed) bytes, because the L1 keeps decoded values. A 5 KB page stored as ~2 KB of LZ4 held ~12 KB of heap
 * (its HTML string, two bytes a character once one character is outside Latin-1, its RSC buffer, its objects), so a
 * budget counted in stored bytes let the heap grow to several times the budget (bench/write-heap.ts).
 */

/** Per object, array or map: its header and hidden class share, as V8 lays them out on 64-bit (rounded up). */
const OBJECT_BYTES = 64;
/** Per property, element or map entry: the slot (and the map entry's hash-table share). */
const SLOT_BYTES = 16;
/** Per string: its header. */
const STRING_BYTES = 24;
/** Per entry of the L1 itself: lru-cache's bookkeeping (key map, links, size, TTL slots) and the entry wrapper. */
export const L1_ENTRY_OVERHEAD_BYTES = 160;
/** Deeper than this the walk stops counting structure (values cached here are shallow: entries, JSON, rows). */
const MAX_DEPTH = 64;

/**
 * Bytes a string holds, from above: two per character. V8 keeps a string one byte a character while every character
 * is Latin-1, but telling costs a scan (1.2 ms for a 2 MB page, 10 µs for 20 KB: more than the rest of the walk on
 * every write and L2 read), so a Latin-1 page is counted twice over: the budget may be underused, never exceeded.
 */
export function stringBytes(text: string): number {
  return STRING_BYTES + 2 * text.length;
}

/**
 * The memory `value` holds: strings, bytes and the structure around them. A byte view counts the whole buffer it
 * keeps alive, once per walk.
 */
export function footprint(value: unknown): number {
  return walk(value, new Set(), 0);
}

function walk(value: unknown, buffers: Set<ArrayBufferLike>, depth: number): number {
  if (typeof value === 'string') return stringBytes(value);
  if (value === null || typeof value !== 'object') return SLOT_BYTES;
  if (ArrayBuffer.isView(value)) return viewBytes(value, buffers);
  if (value instanceof ArrayBuffer) {
    if (buffers.has(value)) return 0;
    buffers.add(value);
    return value.byteLength;
  }
  if (depth >= MAX_DEPTH) return OBJECT_BYTES;
  let bytes = OBJECT_BYTES;
  if (Array.isArray(value)) {
    for (const item of value) bytes += SLOT_BYTES + walk(item, buffers, depth + 1);
  } else if (value instanceof Map) {
    for (const [key, item] of value) bytes += 2 * SLOT_BYTES + walk(key, buffers, depth + 1) + walk(item, buffers, depth + 1);
  } else if (value instanceof Set) {
    for (const item of value) bytes += SLOT_BYTES + walk(item, buffers, depth + 1);
  } else {
    for (const key in value) {
      if (Object.hasOwn(value, key)) bytes += SLOT_BYTES + walk((value as Record<string, unknown>)[key], buffers, depth + 1);
    }
  }
  return bytes;
}

function viewBytes(view: ArrayBufferView, buffers: Set<ArrayBufferLike>): number {
  const backing = view.buffer;
  if (backing.byteLength <= view.byteLength) return OBJECT_BYTES + view.byteLength;
  if (buffers.has(backing)) return OBJECT_BYTES;
  buffers.add(backing);
  // A view keeps its whole buffer alive: a field decoded in place keeps the payload, and a buffer under 4 KB that Node
  // carved from its shared 8 KB pool (Buffer.concat, Buffer.from: Next's RSC payloads) keeps the slab, whose other
  // slices are mostly garbage by the time a cache copy is old (bench/write-heap.ts: 8 KB per 1.7 KB payload).
  return OBJECT_BYTES + backing.byteLength;
}
