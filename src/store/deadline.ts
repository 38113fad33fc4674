import { BackendError } from '../protocol/backend.js';

/**
 * Settles with `promise`, or rejects with a `timeout` BackendError after `ms`. A safety net around every L2 call, so
 * that even a custom backend that never answers cannot hang a page render.
 */
export function withDeadline<T>(promise: Promise<T>, ms: number, backend: string, operation: string): Promise<T> {
  if (!Number.isFinite(ms)) return promise;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new BackendError(`${operation} did not answer within ${ms} ms`, { kind: 'timeout', backend, operation }));
    }, ms);
    timer.unref?.();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
