/** Assertions on the two error types every component throws. */
import { expect } from 'vitest';
import { BackendError } from '../../src/protocol/backend.js';
import { ConfigError } from '../../src/shared/options.js';

/** Awaits `promise`, expects it to reject with a BackendError, and returns that error. */
export async function rejection(promise: Promise<unknown>): Promise<BackendError> {
  const error = await promise.then(
    () => new Error('resolved, expected a rejection'),
    (e: unknown) => e,
  );
  expect(BackendError.is(error), String(error)).toBe(true);
  return error as BackendError;
}

/** Runs `make`, expects it to throw a ConfigError, and returns that error. */
export function configError(make: () => unknown): ConfigError {
  try {
    make();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('did not throw, expected a ConfigError');
}
