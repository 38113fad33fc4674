/**
 * Options declared once: each with its one-line doc, its documented default and its check. The names a component
 * accepts (for typo detection) are the keys of its schema, so the list of known names cannot drift from what is
 * validated. Checks throw a ConfigError naming the component and the option (`l1.maxSizeMb` for nested ones).
 */
import { assertKnownOptions, ConfigError, describe } from './options.js';

export interface OptionSpec {
  /** What the option does, in one line (the reference docs and the types repeat it). */
  doc: string;
  /** The documented default, as the docs state it. */
  default: string;
  /** Throws a ConfigError naming `name` when `value` (never undefined) is not acceptable. */
  check(component: string, name: string, value: unknown): void;
}

export type Schema = Readonly<Record<string, OptionSpec>>;

/** Every name of `schema`, for `assertKnownOptions` and the docs. */
export function knownNames(schema: Schema): string[] {
  return Object.keys(schema);
}

/** Rejects unknown names (a typo such as `keyprefix`), then checks every option given. */
export function validateWith(component: string, schema: Schema, options: object | undefined): void {
  assertKnownOptions(component, options, knownNames(schema));
  if (options === undefined) return;
  for (const [name, spec] of Object.entries(schema)) {
    const value = (options as Record<string, unknown>)[name];
    if (value !== undefined) spec.check(component, name, value);
  }
}

/** A check of an object-valued option against its own schema (`false` allowed when `allowFalse`). */
export function nested(schema: Schema, shape: string, allowFalse = false): OptionSpec['check'] {
  return (component, name, value) => {
    if (allowFalse && value === false) return;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new ConfigError(component, name, `must be ${shape}, got ${describe(value)}`);
    }
    assertKnownOptions(`${component} ${name}`, value, knownNames(schema));
    for (const [key, spec] of Object.entries(schema)) {
      const inner = (value as Record<string, unknown>)[key];
      if (inner !== undefined) spec.check(component, `${name}.${key}`, inner);
    }
  };
}

/** Keeps the named entries of `schema` (a component that accepts a subset, e.g. cachedFetch). */
export function pick<S extends Schema, K extends keyof S & string>(schema: S, names: readonly K[]): Pick<S, K> {
  return Object.fromEntries(names.map((name) => [name, schema[name]])) as Pick<S, K>;
}

/** `schema` without the named entries (e.g. withCachekit: no function-valued options). */
export function omit<S extends Schema, K extends keyof S & string>(schema: S, names: readonly K[]): Omit<S, K> {
  return Object.fromEntries(Object.entries(schema).filter(([name]) => !(names as readonly string[]).includes(name))) as Omit<S, K>;
}
