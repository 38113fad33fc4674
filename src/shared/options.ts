/**
 * Option validation shared by every constructor: invalid options fail at construction, with a message that names
 * the component and the option.
 */

/**
 * Deadline of every L2 call, handlers and loaders alike: the most a sick backend adds to one request; an answer
 * later than that is worse than the work it saves (the loaders' former 5 s made a dead backend cost 5 s per call).
 */
export const DEFAULT_TIMEOUT_MS = 1_500;

/** A configuration mistake. `option` names the offending option (or environment variable). */
export class ConfigError extends TypeError {
  readonly option: string;
  constructor(component: string, option: string, problem: string) {
    super(`[cachekit] ${component}: option \`${option}\` ${problem}`);
    this.name = 'ConfigError';
    this.option = option;
  }
}

/** Throws when `options` holds a key not in `known` (catches typos such as `keyprefix`). */
export function assertKnownOptions(component: string, options: object | undefined, known: readonly string[]): void {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new ConfigError(component, 'options', `must be an object, got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if ((options as Record<string, unknown>)[key] === undefined) continue;
    if (!known.includes(key)) {
      throw new ConfigError(component, key, `is not a known option (known: ${known.join(', ')})`);
    }
  }
}

export interface NumberRule {
  min?: number;
  max?: number;
  integer?: boolean;
  /** Whether `min` itself is allowed. @default true */
  minInclusive?: boolean;
  /** Whether `Infinity` (meaning "no limit") is allowed. @default false */
  allowInfinity?: boolean;
}

/** `value` if it is a finite number within the rule, `fallback` if undefined; throws otherwise. */
export function numberOption(component: string, option: string, value: unknown, fallback: number, rule: NumberRule = {}): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || (!Number.isFinite(value) && !(rule.allowInfinity && value === Infinity))) {
    throw new ConfigError(component, option, `must be a finite number, got ${describe(value)}`);
  }
  if (rule.integer && !Number.isInteger(value)) throw new ConfigError(component, option, `must be an integer, got ${value}`);
  if (rule.min !== undefined) {
    const inclusive = rule.minInclusive ?? true;
    if (inclusive ? value < rule.min : value <= rule.min) {
      throw new ConfigError(component, option, `must be ${inclusive ? '>=' : '>'} ${rule.min}, got ${value}`);
    }
  }
  if (rule.max !== undefined && value > rule.max) {
    throw new ConfigError(component, option, `must be <= ${rule.max}, got ${value}`);
  }
  return value;
}

export function stringOption(component: string, option: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string') throw new ConfigError(component, option, `must be a string, got ${describe(value)}`);
  return value;
}

export function booleanOption(component: string, option: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new ConfigError(component, option, `must be a boolean, got ${describe(value)}`);
  return value;
}

/** Parses a numeric environment variable, naming the variable when it is not a number. */
export function envNumber(name: string, env: NodeJS.ProcessEnv): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new ConfigError('environment', name, `must be a number, got ${JSON.stringify(raw)}`);
  return value;
}

/**
 * A numeric environment variable checked against `rule`, in the variable's own unit, so that a ConfigError names the
 * variable the user set (component `environment`) rather than the option it feeds. `undefined` when unset or blank.
 */
export function envNumberOption(name: string, env: NodeJS.ProcessEnv, rule: NumberRule): number | undefined {
  const value = envNumber(name, env);
  return value === undefined ? undefined : numberOption('environment', name, value, value, rule);
}

/** Parses a boolean environment variable (`true`/`1`/`yes` or `false`/`0`/`no`). */
export function envBoolean(name: string, env: NodeJS.ProcessEnv): boolean | undefined {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return undefined;
  if (['true', '1', 'yes', 'on'].includes(raw)) return true;
  if (['false', '0', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError('environment', name, `must be true or false, got ${JSON.stringify(env[name])}`);
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}...` : value);
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}
