/**
 * `cache(fn)` argument keys are stable across processes and releases: test/wire/loader-key-vectors.json pins
 * arguments -> key (the file changes only with a new version of the key rules, src/wire/loader-key.ts). Two vectors
 * are also rebuilt here byte by byte from the documented rules, so the file is not only checked against itself.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cache } from '../../src/loaders/cache.js';
import { fromTagged } from '../support/tagged-json.js';

interface Vector {
  name: string;
  args: unknown[];
  key: string;
  encoding_hex: string;
}

const { vectors } = JSON.parse(readFileSync(new URL('./loader-key-vectors.json', import.meta.url), 'utf8')) as { vectors: Vector[] };
const f = cache(async (..._args: unknown[]) => 1, { backend: null, name: 'vectors' });
const keyOf = (bytes: Buffer) => `cachekit:default:fn:vectors:${createHash('sha256').update(bytes).digest('hex')}`;

describe('cache(fn) argument keys: the pinned vectors', () => {
  it.each(vectors.map((v) => [v.name, v] as const))('%s', (_name, vector) => {
    expect(f.keyFor(...(fromTagged(vector.args) as unknown[]))).toBe(vector.key);
    expect(keyOf(Buffer.from(vector.encoding_hex, 'hex'))).toBe(vector.key);
  });

  it('covers the types the rules name', () => {
    expect(vectors.length).toBeGreaterThanOrEqual(30);
    const tags = JSON.stringify(vectors.map((v) => v.args));
    for (const tag of ['$date', '$map', '$set', '$bigint', '$url', '$typed', '$arraybuffer', '$dataview', '$buffer', '$undefined', '$number', '$nullproto']) {
      expect(tags, tag).toContain(`"${tag}"`);
    }
  });

  it('two vectors rebuilt from the documented rules: prefix, then canonical MessagePack with extension types', () => {
    const prefix = Buffer.from('cachekit-next:args:1\n');
    // ['x', 1]: fixarray of 2, fixstr "x", positive fixint 1.
    expect(f.keyFor('x', 1)).toBe(keyOf(Buffer.concat([prefix, Buffer.from([0x92, 0xa1, 0x78, 0x01])])));
    // [new Date(0), 10n]: fixext8 type 3 (float64 of getTime()), then ext8 type 2 of the decimal digits "10".
    const date = Buffer.concat([Buffer.from([0xd7, 0x03]), Buffer.alloc(8)]);
    const bigint = Buffer.from([0xd5, 0x02, 0x31, 0x30]);
    expect(f.keyFor(new Date(0), 10n)).toBe(keyOf(Buffer.concat([prefix, Buffer.from([0x92]), date, bigint])));
  });
});
