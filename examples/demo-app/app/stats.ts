import type { CacheInfo } from 'cachekit-next';
import { backend, loaders } from './loaders';

export interface Stats {
  /** The L2 type (`file`, `redis`, ...) and, for a File backend, its directory. */
  backend: { type: string; where?: string };
  loaders: Record<string, CacheInfo & { key: string }>;
}

/** info() of every loader: counters of this server process since it started. */
export function readStats(): Stats {
  return {
    backend: { type: loaders.catalog.info().backend, where: backend && 'cacheDir' in backend ? String(backend.cacheDir) : undefined },
    loaders: Object.fromEntries(Object.entries(loaders).map(([name, load]) => [name, { ...load.info(), key: load.keyFor() }])),
  };
}
