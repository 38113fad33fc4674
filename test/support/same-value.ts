/**
 * A strict structural comparison for "the hit returns what the miss returned": same prototypes all the way down,
 * `Object.is` for primitives (so `-0` is not `0`, `NaN` is `NaN`), holes are not `undefined`, the same own keys in the
 * same order (objects, Maps, Sets), the same bytes of typed arrays, ArrayBuffers and DataViews, the same time of
 * Dates (invalid ones included) and `href` of URLs. node:util's isDeepStrictEqual misses key order and calls two
 * invalid Dates different; this returns where the first difference is, for the failure message.
 */
export function difference(a: unknown, b: unknown, path = 'value', seen = new Map<object, object>()): string | null {
  if (typeof a !== typeof b) return `${path}: ${typeof a} vs ${typeof b}`;
  if (typeof a !== 'object' || a === null || b === null) {
    return Object.is(a, b) ? null : `${path}: ${describe(a)} vs ${describe(b)}`;
  }
  const x = a as object;
  const y = b as object;
  if (Object.getPrototypeOf(x) !== Object.getPrototypeOf(y)) return `${path}: prototype ${protoName(x)} vs ${protoName(y)}`;
  if (seen.get(x) === y) return null;
  seen.set(x, y);
  if (x instanceof Date) return Object.is(x.getTime(), (y as Date).getTime()) ? null : `${path}: ${x.getTime()} vs ${(y as Date).getTime()}`;
  if (x instanceof URL) return x.href === (y as URL).href ? null : `${path}: ${x.href} vs ${(y as URL).href}`;
  if (x instanceof ArrayBuffer || ArrayBuffer.isView(x)) {
    const bytes = (v: object) =>
      v instanceof ArrayBuffer
        ? new Uint8Array(v)
        : new Uint8Array((v as ArrayBufferView).buffer, (v as ArrayBufferView).byteOffset, (v as ArrayBufferView).byteLength);
    return Buffer.compare(bytes(x), bytes(y)) === 0 ? null : `${path}: bytes differ`;
  }
  if (x instanceof Map) {
    const ex = [...x];
    const ey = [...(y as Map<unknown, unknown>)];
    if (ex.length !== ey.length) return `${path}: Map of ${ex.length} vs ${ey.length} entries`;
    for (let i = 0; i < ex.length; i++) {
      const d = difference(ex[i]![0], ey[i]![0], `${path}<key ${i}>`, seen) ?? difference(ex[i]![1], ey[i]![1], `${path}<value ${i}>`, seen);
      if (d) return d;
    }
    return null;
  }
  if (x instanceof Set) {
    const ex = [...x];
    const ey = [...(y as Set<unknown>)];
    if (ex.length !== ey.length) return `${path}: Set of ${ex.length} vs ${ey.length} items`;
    for (let i = 0; i < ex.length; i++) {
      const d = difference(ex[i], ey[i], `${path}<item ${i}>`, seen);
      if (d) return d;
    }
    return null;
  }
  // Arrays and plain objects: own enumerable string keys (array indices included, so holes count) in order.
  const kx = Object.keys(x);
  const ky = Object.keys(y);
  if (kx.join('\u0000') !== ky.join('\u0000')) return `${path}: keys [${kx.join(', ')}] vs [${ky.join(', ')}]`;
  if (Array.isArray(x) && x.length !== (y as unknown[]).length) return `${path}: length ${x.length} vs ${(y as unknown[]).length}`;
  for (const key of kx) {
    const d = difference((x as Record<string, unknown>)[key], (y as Record<string, unknown>)[key], `${path}[${JSON.stringify(key)}]`, seen);
    if (d) return d;
  }
  return null;
}

function describe(v: unknown): string {
  if (typeof v === 'number' && Object.is(v, -0)) return '-0';
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'symbol') return v.toString();
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

function protoName(v: object): string {
  const proto = Object.getPrototypeOf(v) as { constructor?: { name?: string } } | null;
  return proto === null ? 'null' : (proto.constructor?.name ?? 'anonymous');
}
