import { objectId } from '../shared/identity.js';
import { singleton } from '../shared/registry.js';

import type { CacheOptions } from './types.js';
import { CachedCore, type CoreSettings } from './core.js';

/**
 * The core of a configuration, one per process: every copy of a wrapper (one per route bundle) shares its L1,
 * single-flight and statistics and hears the others' writes. `create` runs only for a configuration not seen yet.
 */
export function sharedCore(signature: readonly unknown[], create: () => CoreSettings): CachedCore {
  const cores = singleton('cachedCores', () => new Map<string, WeakRef<CachedCore>>());
  const key = JSON.stringify(signature);
  const existing = cores.get(key)?.deref();
  if (existing) return existing;
  const core = new CachedCore(create());
  cores.set(key, new WeakRef(core));
  return core;
}

/** What makes two `cache(fn)` cores the same: key scope, backend, tag stack, encryption key and every setting. */
export function cacheSignature(scope: string, options: CacheOptions<never[]>, settings: CoreSettings): unknown[] {
  const backend = typeof settings.backend === 'function' ? 'resolved-later' : settings.backend === null ? 'none' : objectId(settings.backend);
  // Tagged wrappers check tags through a stack, untagged ones need none: they must not share a core.
  const stack = options.stack !== undefined ? objectId(options.stack) : settings.stack ? 'configured' : 'none';
  const encryption = settings.encryption ? [settings.encryption.fingerprint('').toString('hex'), settings.encryption.failClosed] : null;
  const onError = options.onError ? objectId(options.onError) : null;
  return [
    'cache',
    scope,
    backend,
    stack,
    encryption,
    settings.l1,
    settings.lock,
    settings.lockTimeoutMs,
    settings.lockWaitMs,
    settings.breaker,
    settings.timeoutMs,
    settings.coherenceTtlSeconds,
    onError,
  ];
}
