import path from 'node:path';
import type { CacheInfo } from 'cachekit-next';
import { catalog, rates, weather } from './loaders';

/** The loaders the page renders and /api/stats reports, in display order. */
export const loaders = { catalog, weather, rates };

export interface Stats {
  /** The L2 type (`file`, `redis`, ...) and, for the File backend, its directory. */
  backend: { type: string; where?: string };
  loaders: Record<string, CacheInfo & { key: string }>;
}

// Where the handlers keep a File store: CACHEKIT_FILE_CACHE_DIR, else the app's .next/cache/cachekit.
const fileDir = () => process.env.CACHEKIT_FILE_CACHE_DIR || path.join(process.cwd(), '.next', 'cache', 'cachekit');

/** info() of every loader: counters of this server process since it started. */
export function readStats(): Stats {
  // The backend is resolved on a loader's first call: `unresolved` before that.
  const type = catalog.info().backend;
  return {
    backend: { type, where: type === 'file' ? fileDir() : undefined },
    loaders: Object.fromEntries(Object.entries(loaders).map(([name, load]) => [name, { ...load.info(), key: load.keyFor() }])),
  };
}
