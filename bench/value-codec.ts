/**
 * How `cache(fn)` values are encoded: candidates side by side, encode and decode per call and bytes, in one process.
 * Values: the 2 KB product record, a list of 6 and the 64 KB list of 32 of bench/cached-function.ts (JSON-like), and
 * a 32-row list whose rows carry a bigint, a Date, a Set, a Map and a URL next to plain fields (the types a faithful
 * codec exists for). Timed in CPU time of this process (process.cpuUsage), which a machine shared with other work
 * disturbs far less than wall time; 7 interleaved rounds, median. Decode is what an L1 hit pays for its own copy;
 * encode is paid on a miss.
 *
 *   npm run bench -- value-codec
 */
import { Packr } from 'msgpackr';
import { decodeValue, encodeValue } from '../src/wire/typed-value.js';
import { cpuMicrosPerOp, formatNumber, loadAverage, loadLine, machineLine, markdownTable, median, prng, product, settle } from './support.js';

const ROUNDS = 7;

function typedRows(rand: () => number) {
  return Array.from({ length: 32 }, (_, i) => ({
    id: BigInt(1000 + i),
    at: new Date(1_767_225_600_000 + i * 60_000),
    labels: new Set(['new', `batch-${i % 4}`]),
    attributes: new Map<string, unknown>([
      ['color', 'red'],
      ['weight', Math.round(rand() * 1000) / 10],
    ]),
    link: new URL(`https://shop.example/p/${i}`),
    variants: product(rand, i).variants,
  }));
}

const VALUES = [
  { label: '2 KB record', value: product(prng(1), 1) },
  { label: '8 KB list (6 records)', value: Array.from({ length: 6 }, (_, i) => product(prng(50 + i), i)) },
  { label: '64 KB list', value: Array.from({ length: 32 }, (_, i) => product(prng(100 + i), i)) },
  { label: 'typed rows (bigint, Date, Set, Map, URL)', value: typedRows(prng(7)) },
];

interface Candidate {
  name: string;
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array): unknown;
}

const packrOf = (options: ConstructorParameters<typeof Packr>[0]): Pick<Candidate, 'encode' | 'decode'> => {
  const packr = new Packr(options);
  return { encode: (value) => packr.pack(value), decode: (bytes) => packr.unpack(bytes) };
};

const CANDIDATES: Candidate[] = [
  {
    name: 'before: msgpackr maps (Map, Set, URL, typed arrays change type)',
    ...packrOf({ useRecords: false, moreTypes: false, mapsAsObjects: true, variableMapSize: true }),
  },
  {
    name: 'msgpackr maps + moreTypes, no walk (Map would change type)',
    ...packrOf({ useRecords: false, moreTypes: true, mapsAsObjects: true, variableMapSize: true }),
  },
  { name: 'msgpackr records + moreTypes, no walk (Map kept)', ...packrOf({ useRecords: true, moreTypes: true, mapsAsObjects: false }) },
  { name: 'after: value-codec (walk, maps + moreTypes, ext 0x4B)', encode: encodeValue, decode: decodeValue },
];

async function main(): Promise<void> {
  const loads = [loadAverage()];
  const tables: string[] = [];
  for (const { label, value } of VALUES) {
    const encoded = CANDIDATES.map((c) => c.encode(value));
    const results = new Map<string, { encode: number[]; decode: number[] }>(CANDIDATES.map((c) => [c.name, { encode: [], decode: [] }]));
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < CANDIDATES.length; i++) {
        const index = (i + round) % CANDIDATES.length;
        const candidate = CANDIDATES[index]!;
        const bytes = encoded[index]!;
        await settle({ gc: true });
        results.get(candidate.name)!.encode.push(cpuMicrosPerOp(() => candidate.encode(value), 150, 50));
        results.get(candidate.name)!.decode.push(cpuMicrosPerOp(() => candidate.decode(bytes), 150, 50));
        loads.push(loadAverage());
      }
    }
    tables.push(
      `${label}\n\n` +
        markdownTable(
          ['encoding', 'bytes', 'encode CPU µs', 'decode CPU µs'],
          CANDIDATES.map((c, i) => {
            const r = results.get(c.name)!;
            return [c.name, String(encoded[i]!.byteLength), formatNumber(median(r.encode)), formatNumber(median(r.decode))];
          }),
        ),
    );
  }
  console.log(`\n## cache(fn) value encodings, CPU time per call\n\n${machineLine()}; ${loadLine(loads)}\n`);
  console.log(tables.join('\n\n'));
}

await main();
