// One-off (not committed): handler get, this branch with nothing listening vs main, interleaved in one process.
import { RedisBackend } from '../src/backends/redis.js';
import { handlerClassFor } from '../src/next/cache-handler.js';
import { CacheStack } from '../src/stack/stack.js';
import { RedisBackend as MainRedis } from '../../../main/src/backends/redis.js';
import { handlerClassFor as mainHandlerClassFor } from '../../../main/src/next/cache-handler.js';
import { CacheStack as MainStack } from '../../../main/src/stack/stack.js';
import { startRedis } from '../test/support/servers.js';
import { formatNumber, loadLine, loadAverage, makePage, markdownTable, median, opsPerSecond, quietTeardown, settle } from './support.js';

const KEY = '/blog/a-realistic-post';
const CTX = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false };
quietTeardown();
const redis = await startRedis();
const page = makePage(20 * 1024);
const value = { kind: 'APP_PAGE', html: page.html, rscData: page.rscData, headers: { 'x-next-cache-tags': 'posts' }, status: 200 };
const mk = async (Stack: typeof CacheStack, Backend: typeof RedisBackend, hf: typeof handlerClassFor, l1: boolean, ns: string) => {
  const stack = new Stack({ backend: new Backend({ url: redis.url }), namespace: ns, deploymentId: 'b1', ...(l1 ? {} : { l1: false }) });
  await stack.ready;
  const H = hf(() => stack);
  await new H({}).set(KEY, value as never, { cacheControl: { revalidate: 3600, expire: 86400 } } as never);
  return () => new H({}).get(KEY, { ...CTX } as never);
};
const rows: string[][] = [];
const loads: number[] = [];
for (const l1 of [true, false]) {
  const c = {
    main: await mk(MainStack as never, MainRedis as never, mainHandlerClassFor as never, l1, 'm'),
    branch: await mk(CacheStack, RedisBackend, handlerClassFor, l1, 'b'),
  };
  const res: Record<string, number[]> = { main: [], branch: [] };
  for (let r = 0; r < 9; r++) {
    loads.push(loadAverage());
    for (const name of r % 2 ? ['main', 'branch'] : ['branch', 'main']) {
      await settle({ gc: true });
      res[name]!.push(
        await opsPerSecond(async () => {
          if (!(await c[name as 'main']())) throw new Error('miss');
        }, 400),
      );
    }
  }
  const m = median(res.main!);
  const b = median(res.branch!);
  rows.push([l1 ? 'L1 hit' : 'L2 hit', formatNumber(m, 0), formatNumber(b, 0), `${formatNumber((b / m) * 100, 1)} %`]);
}
console.log(loadLine(loads));
console.log(markdownTable(['read', 'main ops/s', 'branch (off) ops/s', 'branch vs main'], rows));
await redis.stop();
process.exit(0);
