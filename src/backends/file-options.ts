/** FileBackend's options: their defaults and validation, and the `CACHEKIT_FILE_*` environment variables. */
import os from 'node:os';
import path from 'node:path';
import { ConfigError, assertKnownOptions, envNumberOption, numberOption, stringOption } from '../shared/options.js';

export interface FileBackendOptions {
  /** Directory holding the entries; created with mode 0700. Must not be a symlink. @default `$TMPDIR/cachekit` */
  cacheDir?: string;
  /** Total size of the entries (headers included), in MiB. Eviction starts past 90% and stops at 70%. @default 1024 */
  maxSizeMb?: number;
  /** Largest value accepted, in MiB; must not exceed `maxSizeMb`. @default 100 (or `maxSizeMb` if smaller) */
  maxValueMb?: number;
  /** Number of entries. Eviction starts past 90% and stops at 70%. @default 10000 */
  maxEntryCount?: number;
}

export const COMPONENT = 'FileBackend';

/** The options with their defaults, validated: a ConfigError names the option. `cacheDir` is absolute. */
export function resolveFileOptions(options: FileBackendOptions): Required<FileBackendOptions> {
  assertKnownOptions(COMPONENT, options, ['cacheDir', 'maxSizeMb', 'maxValueMb', 'maxEntryCount']);
  const dir = stringOption(COMPONENT, 'cacheDir', options.cacheDir, path.join(os.tmpdir(), 'cachekit'));
  if (dir.trim() === '') throw new ConfigError(COMPONENT, 'cacheDir', 'must be a non-empty path');
  if (dir.includes('\0')) throw new ConfigError(COMPONENT, 'cacheDir', 'must not contain a NUL character');
  const maxSizeMb = numberOption(COMPONENT, 'maxSizeMb', options.maxSizeMb, 1024, { min: 0, minInclusive: false });
  const maxValueMb = numberOption(COMPONENT, 'maxValueMb', options.maxValueMb, Math.min(100, maxSizeMb), { min: 0, minInclusive: false });
  if (maxValueMb > maxSizeMb) throw new ConfigError(COMPONENT, 'maxValueMb', `must be <= maxSizeMb (${maxSizeMb}), got ${maxValueMb}`);
  const maxEntryCount = numberOption(COMPONENT, 'maxEntryCount', options.maxEntryCount, 10_000, { min: 1, integer: true });
  return { cacheDir: path.resolve(dir), maxSizeMb, maxValueMb, maxEntryCount };
}

/**
 * `CACHEKIT_FILE_CACHE_DIR`, `CACHEKIT_FILE_MAX_SIZE_MB`, `CACHEKIT_FILE_MAX_VALUE_MB` and
 * `CACHEKIT_FILE_MAX_ENTRY_COUNT` under explicit `options` (which win).
 */
export function fileOptionsFromEnv(env: NodeJS.ProcessEnv, options: FileBackendOptions): FileBackendOptions {
  const fromEnv = (name: string, rule: { integer?: boolean }) => envNumberOption(name, env, { min: 0, minInclusive: false, ...rule });
  const dir = env.CACHEKIT_FILE_CACHE_DIR?.trim();
  return {
    cacheDir: options.cacheDir ?? (dir ? dir : undefined),
    maxSizeMb: options.maxSizeMb ?? fromEnv('CACHEKIT_FILE_MAX_SIZE_MB', {}),
    maxValueMb: options.maxValueMb ?? fromEnv('CACHEKIT_FILE_MAX_VALUE_MB', {}),
    maxEntryCount: options.maxEntryCount ?? fromEnv('CACHEKIT_FILE_MAX_ENTRY_COUNT', { integer: true }),
  };
}
