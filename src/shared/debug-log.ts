/**
 * `CACHEKIT_DEBUG=1`: one structured line per cache decision and L2 call (kind, outcome, layer, a hash of the key,
 * milliseconds), through the package logger. Never a value, a key in clear, or anything secret.
 */
import type { Env } from './env.js';
import { createHash } from 'node:crypto';
import { logger } from './log.js';
import { subscribe, type TelemetryEvent } from './telemetry.js';
import { singleton } from './registry.js';

/** The running debug listener's stop function, if any. */
const holder = () => singleton('debugLog', (): { stop?: () => void } => ({}));

/** The first 16 hex digits of the key's SHA-256: enough to follow one key through the log, nothing to read it by. */
export function keyHash(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

/** The log line of an event (JSON, one line), or `null` for events not logged. */
export function debugLine(event: TelemetryEvent): string | null {
  const ms = (n: number) => Math.round(n * 1000) / 1000;
  switch (event.type) {
    case 'lookup':
      return JSON.stringify({
        cachekit: 'lookup',
        kind: event.kind,
        outcome: event.outcome,
        layer: event.layer,
        backend: event.backend,
        keyHash: keyHash(event.key),
        ms: ms(event.ms),
      });
    case 'l2':
      return JSON.stringify({
        cachekit: 'l2',
        operation: event.operation,
        backend: event.backend,
        outcome: event.errorKind === null ? 'ok' : 'error',
        ...(event.errorKind === null ? {} : { errorKind: event.errorKind }),
        ...(event.key === undefined ? {} : { keyHash: keyHash(event.key) }),
        bytes: event.bytesRead + event.bytesWritten,
        ms: ms(event.ms),
      });
    case 'breaker':
      return JSON.stringify({ cachekit: 'breaker', backend: event.backend, from: event.from, to: event.to });
    case 'revalidate':
      return JSON.stringify({ cachekit: 'revalidate', profile: event.profile, tags: event.tags });
    default:
      return null;
  }
}

/** Starts the debug log once per process when `CACHEKIT_DEBUG` is `1` (or `true`). */
export function startDebugLogFromEnv(env: Env): void {
  const started = holder();
  if (started.stop || !(env.CACHEKIT_DEBUG === '1' || env.CACHEKIT_DEBUG === 'true')) return;
  started.stop = subscribe((event) => {
    const line = debugLine(event);
    if (line !== null) logger().info(`[cachekit:debug] ${line}`);
  });
}

/** Stops the debug log (tests). */
export function stopDebugLog(): void {
  const started = holder();
  started.stop?.();
  started.stop = undefined;
}
