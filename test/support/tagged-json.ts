/**
 * JS values beyond JSON written as JSON, for vector files: `{"$bigint": "10"}`, `{"$date": 0}` (or `"invalid"`),
 * `{"$map": [[k, v], ...]}`, `{"$set": [...]}`, `{"$url": "..."}`, `{"$undefined": true}`, `{"$number": "NaN" |
 * "Infinity" | "-Infinity" | "-0"}`, `{"$typed": "Float32Array", "values": [...]}` (bigint elements as strings),
 * `{"$arraybuffer": [bytes]}`, `{"$dataview": [bytes]}`, `{"$buffer": [bytes]}`, `{"$nullproto": {...}}`,
 * `{"$repeat": "x", "times": 40}`; other objects and arrays hold tagged values.
 */
export function fromTagged(json: unknown): unknown {
  if (Array.isArray(json)) return json.map(fromTagged);
  if (json === null || typeof json !== 'object') return json;
  const tagged = json as Record<string, unknown>;
  const [tag] = Object.keys(tagged);
  switch (tag) {
    case '$undefined':
      return undefined;
    case '$number':
      return Number(tagged.$number === '-0' ? -0 : tagged.$number);
    case '$bigint':
      return BigInt(tagged.$bigint as string);
    case '$date':
      return new Date(tagged.$date === 'invalid' ? NaN : (tagged.$date as number | string));
    case '$map':
      return new Map((tagged.$map as unknown[][]).map(([k, v]) => [fromTagged(k), fromTagged(v)]));
    case '$set':
      return new Set((tagged.$set as unknown[]).map(fromTagged));
    case '$url':
      return new URL(tagged.$url as string);
    case '$typed': {
      const type = (globalThis as unknown as Record<string, new (values: unknown[]) => unknown>)[tagged.$typed as string]!;
      const big = (tagged.$typed as string).startsWith('Big');
      return new type((tagged.values as unknown[]).map((v) => (big ? BigInt(v as string) : fromTagged(v))));
    }
    case '$arraybuffer':
      return Uint8Array.from(tagged.$arraybuffer as number[]).buffer;
    case '$dataview':
      return new DataView(Uint8Array.from(tagged.$dataview as number[]).buffer);
    case '$buffer':
      return Buffer.from(tagged.$buffer as number[]);
    case '$nullproto':
      return Object.assign(Object.create(null) as object, fromTagged(tagged.$nullproto) as object);
    case '$repeat':
      return (tagged.$repeat as string).repeat(tagged.times as number);
    default:
      return Object.fromEntries(Object.entries(tagged).map(([k, v]) => [k, fromTagged(v)]));
  }
}
