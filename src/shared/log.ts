/**
 * The one place cachekit writes to the log. Repeated messages of the same kind are rate limited so a dead backend
 * under traffic cannot flood the server's output.
 */
import { nowMs } from './clock.js';
import { singleton } from './registry.js';

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
}

const current = () => singleton<{ logger?: Logger }>('logger', () => ({}));

const consoleLogger: Logger = {
  info: (message) => console.info(message),
  warn: (message) => console.warn(message),
};

/** Replaces the logger (e.g. with pino), process-wide. Pass `null` to restore the console. */
export function setLogger(logger: Logger | null): void {
  current().logger = logger ?? undefined;
}

export function logger(): Logger {
  return current().logger ?? consoleLogger;
}

const throttle = () => singleton('logThrottle', () => ({ lastLogged: new Map<string, { at: number; suppressed: number }>(), announced: new Set<string>() }));

/** Logs `message` unless a message with the same `topic` was logged within `intervalMs`. */
export function warnRateLimited(topic: string, message: string, intervalMs = 10_000): void {
  const now = nowMs();
  const { lastLogged } = throttle();
  const last = lastLogged.get(topic);
  if (last && now - last.at < intervalMs) {
    last.suppressed++;
    return;
  }
  const suffix = last && last.suppressed > 0 ? ` (${last.suppressed} similar messages suppressed)` : '';
  lastLogged.set(topic, { at: now, suppressed: 0 });
  logger().warn(`${message}${suffix}`);
}

/** Logs `message` once per process per `topic`. */
export function infoOnce(topic: string, message: string): void {
  const { announced } = throttle();
  if (announced.has(topic)) return;
  announced.add(topic);
  logger().info(message);
}

/** Warns `message` once per process per `topic` (deprecations). */
export function warnOnce(topic: string, message: string): void {
  const { announced } = throttle();
  if (announced.has(`warn:${topic}`)) return;
  announced.add(`warn:${topic}`);
  logger().warn(message);
}
