/**
 * Small pieces every backend needs the same way: reading a thrown value, and the two shapes of BackendError they
 * raise themselves (a wrapped client failure, and an operation refused before it reached the store).
 */
import { BackendError, type BackendErrorKind } from '../protocol/backend.js';

/**
 * Matches a lone UTF-16 surrogate. UTF-8 encodes every one of them as U+FFFD, so distinct keys holding them would
 * collide once encoded: backends that hash keys hash such keys' UTF-16 code units instead.
 */
export const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** The message of an Error, or the thrown value as text. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The string `code` of a thrown value (`ENOENT`, `ECONNREFUSED`, ...), if it has one. */
export function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * A client or system failure as a BackendError: `<operation> failed: <message>`, of the kind `classify` gives, with
 * the original as `cause`. A BackendError passes through unchanged.
 */
export function wrapError(
  backend: string,
  operation: string,
  key: string | undefined,
  error: unknown,
  classify: (error: unknown) => BackendErrorKind,
): BackendError {
  if (BackendError.is(error)) return error;
  return new BackendError(`${operation} failed: ${errorMessage(error)}`, { kind: classify(error), backend, operation, key, cause: error });
}

/** An operation refused by the backend itself (bad argument, closed backend): `<operation>: <message>`. */
export function operationError(backend: string, kind: BackendErrorKind, operation: string, key: string | undefined, message: string): BackendError {
  return new BackendError(`${operation}: ${message}`, { kind, backend, operation, key });
}
