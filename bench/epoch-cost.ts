/**
 * What read-your-own-writes costs on backends without messages (part of `node bench/run.mjs staleness`): a request
 * that is an L1 hit (a new handler, as Next constructs one per request, and one `get`) with the invalidation epoch
 * (default) and without it (`readYourWrites: false`), one request at a time and 32 at once, and a `set` (the epoch
 * adds an incr and one journal write). Rounds are interleaved; the median round is reported.
 */
import { isClosable, type Backend } from '../src/protocol/backend.js';
import { createOurs, type Ours } from './ours.js';
import { formatNumber, markdownTable, median, settle } from './support.js';

const ROUNDS = 5;
const ROUND_MS = 600;
const CONCURRENCY = 32;
const GET_CTX = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false };
const CACHE_CONTROL = { cacheControl: { revalidate: 3600, expire: 86_400 } };

const page = (version: number) => ({
  kind: 'APP_PAGE',
  html: `<!DOCTYPE html><html><body data-version="${version}">${'<p>Lorem ipsum dolor sit amet, café.</p>'.repeat(400)}</body></html>`,
  rscData: Buffer.from('0:["$","p",null,{"children":"x"}]\n'.repeat(100)),
  headers: { 'x-next-cache-tags': '_N_T_/layout,_N_T_/cost,cost' },
  status: 200,
});

/** Microseconds per operation over one round of `minMs`, running `batch` at a time. */
async function usPerOp(op: () => Promise<unknown>, batch: number): Promise<number> {
  let ops = 0;
  const started = performance.now();
  while (performance.now() - started < ROUND_MS) {
    await (batch === 1 ? op() : Promise.all(Array.from({ length: batch }, op)));
    ops += batch;
  }
  return ((performance.now() - started) * 1000) / ops;
}

interface Measured {
  us: number;
  /** Epoch reads (counter reads) per request. */
  readsPerRequest: number;
}

async function requests(ours: Ours, key: string, batch: number): Promise<Measured> {
  const epoch = ours.stack.bus.epoch;
  const rounds: number[] = [];
  const readsBefore = epoch?.stats.reads ?? 0;
  let count = 0;
  const op = async () => {
    count++;
    const hit = await ours.request().get(key, { ...GET_CTX });
    if (!hit) throw new Error(`epoch-cost: ${key} missed`);
  };
  for (let round = 0; round < ROUNDS; round++) {
    await settle({ gc: true });
    rounds.push(await usPerOp(op, batch));
  }
  return { us: median(rounds), readsPerRequest: ((epoch?.stats.reads ?? 0) - readsBefore) / count };
}

async function sets(ours: Ours, key: string): Promise<number> {
  const rounds: number[] = [];
  let version = 0;
  for (let round = 0; round < ROUNDS; round++) {
    await settle({ gc: true });
    rounds.push(await usPerOp(() => ours.request().set(key, page(++version), CACHE_CONTROL), 1));
  }
  return median(rounds);
}

/** Measures every backend; returns the markdown section to print. */
export async function measureCost(backends: [string, () => Backend][]): Promise<string> {
  const rows: string[][] = [];
  for (const [label, make] of backends) {
    const made = [make(), make()];
    const [withEpoch, without] = [await createOurs(made[0]!, {}), await createOurs(made[1]!, { readYourWrites: false })];
    const key = `/cost/${label.replace(/\W+/g, '-')}`;
    await withEpoch.request().set(key, page(0), CACHE_CONTROL);
    const us = (value: number) => `${formatNumber(value, value < 10 ? 1 : 0)} µs`;
    const one = { epoch: await requests(withEpoch, key, 1), none: await requests(without, key, 1) };
    const many = { epoch: await requests(withEpoch, key, CONCURRENCY), none: await requests(without, key, CONCURRENCY) };
    const write = { epoch: await sets(withEpoch, `${key}/w`), none: await sets(without, `${key}/w`) };
    rows.push([
      label,
      us(one.none.us),
      us(one.epoch.us),
      formatNumber(one.epoch.readsPerRequest, 2),
      us(many.none.us),
      us(many.epoch.us),
      formatNumber(many.epoch.readsPerRequest, 3),
      us(write.none),
      us(write.epoch),
    ]);
    console.error(`[staleness] cost on ${label} done`);
    await withEpoch.stack.close();
    await without.stack.close();
    for (const backend of made) if (isClosable(backend)) await backend.close();
  }
  return [
    `\n### Cost of the epoch read: a request that is an L1 hit (new handler + one \`get\` of a ~20 KB page), and a \`set\` (median of ${ROUNDS} rounds of ${ROUND_MS} ms)\n`,
    '`readYourWrites: false` re-reads the page from the L2 once its 1 s L1 lifetime is over; with the epoch the L1 copy stays until it changes.\n',
    markdownTable(
      [
        'backend',
        'request, `readYourWrites: false`',
        'request, epoch',
        'epoch reads / request',
        `${CONCURRENCY} at once, \`false\` (per request)`,
        `${CONCURRENCY} at once, epoch (per request)`,
        'epoch reads / request',
        '`set`, `false`',
        '`set`, epoch',
      ],
      rows,
    ),
  ].join('\n');
}
