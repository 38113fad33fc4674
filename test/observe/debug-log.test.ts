/** CACHEKIT_DEBUG=1: one structured line per cache decision and L2 call, with a key hash, never the key or the value. */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../src/backends/memory.js';
import { handlerClassFor } from '../../src/next/cache-handler.js';
import { setLogger } from '../../src/shared/log.js';
import { keyHash, startDebugLogFromEnv, stopDebugLog } from '../../src/shared/debug-log.js';
import { getStack, resetStacks } from '../../src/stack/stack.js';
import { appPage } from '../next/fixtures.js';

afterEach(async () => {
  stopDebugLog();
  setLogger(null);
  await resetStacks();
});

describe('CACHEKIT_DEBUG', () => {
  it('logs lookups and L2 calls as JSON with the key hashed, and nothing without the variable', async () => {
    const lines: string[] = [];
    setLogger({ info: (m) => lines.push(m), warn: (m) => lines.push(m) });
    startDebugLogFromEnv({});
    const stack = getStack({ backend: new MemoryBackend(), namespace: 'debug', deploymentId: 'd1' });
    const Handler = handlerClassFor(() => stack);
    await new Handler({}).get('/private/page', { kind: 'APP_PAGE' });
    // A first write creates the invalidation counter (the memory backend has no messages); the instance's next epoch
    // read drops its L1 once for it. Past that, a written page is an L1 hit.
    await new Handler({}).set('/warm-up', appPage('w'), { cacheControl: { revalidate: 60, expire: 600 } });
    await new Handler({}).get('/warm-up', { kind: 'APP_PAGE' });
    expect(lines.filter((l) => l.startsWith('[cachekit:debug]'))).toEqual([]);

    startDebugLogFromEnv({ CACHEKIT_DEBUG: '1' });
    await new Handler({}).get('/private/page', { kind: 'APP_PAGE' });
    await new Handler({}).set('/private/page', appPage('private-tag'), { cacheControl: { revalidate: 60, expire: 600 } });
    await new Handler({}).get('/private/page', { kind: 'APP_PAGE' });
    const records = lines.filter((l) => l.startsWith('[cachekit:debug] ')).map((l) => JSON.parse(l.slice('[cachekit:debug] '.length)));
    const lookups = records.filter((r) => r.cachekit === 'lookup');
    expect(lookups).toMatchObject([
      { kind: 'page', outcome: 'miss', layer: 'none', backend: 'memory' },
      { kind: 'page', outcome: 'hit', layer: 'l1', backend: 'memory' },
    ]);
    expect(lookups[0].keyHash).toBe(keyHash('/private/page'));
    expect(typeof lookups[0].ms).toBe('number');
    expect(records.some((r) => r.cachekit === 'l2' && r.operation === 'set' && r.bytes > 0)).toBe(true);
    expect(lines.join('\n')).not.toMatch(/private|ünïcödé|Blog/);
  });
});
