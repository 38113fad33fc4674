/**
 * The one place cachekit writes to the log. Repeated messages of the same kind are rate limited so a dead backend
 * under traffic cannot flood the server's output.
 */
import { nowMs } from './clock.js';

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
}

const GLOBAL = Symbol.for('cachekit-next.logger');
type Holder = { [GLOBAL]?: Logger };

const consoleLogger: Logger = {
  info: (message) => console.info(message),
  warn: (message) => console.warn(message),
};

/** Replaces the logger (e.g. with pino), process-wide. Pass `null` to restore the console. */
export function setLogger(logger: Logger | null): void {
  (globalThis as Holder)[GLOBAL] = logger ?? undefined;
}

export function logger(): Logger {
  return (globalThis as Holder)[GLOBAL] ?? consoleLogger;
}

const lastLogged = new Map<string, { at: number; suppressed: number }>();

/** Logs `message` unless a message with the same `topic` was logged within `intervalMs`. */
export function warnRateLimited(topic: string, message: string, intervalMs = 10_000): void {
  const now = nowMs();
  const last = lastLogged.get(topic);
  if (last && now - last.at < intervalMs) {
    last.suppressed++;
    return;
  }
  const suffix = last && last.suppressed > 0 ? ` (${last.suppressed} similar messages suppressed)` : '';
  lastLogged.set(topic, { at: now, suppressed: 0 });
  logger().warn(`${message}${suffix}`);
}

const announced = new Set<string>();

/** Logs `message` once per process per `topic`. */
export function infoOnce(topic: string, message: string): void {
  if (announced.has(topic)) return;
  announced.add(topic);
  logger().info(message);
}
