/**
 * One options vocabulary (src/stack/vocabulary.ts): every option of the handlers and the loaders is declared once,
 * the knobs both have are the same declaration, and both reject and accept them alike, with errors naming the option.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryBackend } from '../../src/backends/memory.js';
import { cache } from '../../src/loaders/cache.js';
import type { CacheOptions } from '../../src/loaders/types.js';
import { coreOptions } from '../../src/loaders/options.js';
import { setLogger } from '../../src/shared/log.js';
import { ConfigError } from '../../src/shared/options.js';
import { knownNames } from '../../src/shared/option-schema.js';
import { resetForTests } from '../../src/shared/registry.js';
import { getStack, validateOptions, type CachekitNextOptions } from '../../src/stack/stack.js';
import { CACHED_FETCH_OPTIONS, COMMON, HANDLER_OPTIONS, LOADER_OPTIONS, WITH_CACHEKIT_OPTIONS } from '../../src/stack/vocabulary.js';
import { withCachekit, type WithCachekitOptions } from '../../src/next/config.js';
import { Encryptor } from '../../src/wire/encryption.js';

// The schemas and the option types name the same options (checked by tsc, which type-checks test/).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const handlerNamesMatch: Same<keyof CachekitNextOptions, keyof typeof HANDLER_OPTIONS> = true;
const loaderNamesMatch: Same<keyof CacheOptions, keyof typeof LOADER_OPTIONS> = true;
const withCachekitNamesMatch: Same<keyof WithCachekitOptions, keyof typeof WITH_CACHEKIT_OPTIONS> = true;

const error = (run: () => unknown): ConfigError | undefined => {
  try {
    run();
  } catch (caught) {
    if (caught instanceof ConfigError) return caught;
    throw caught;
  }
  return undefined;
};
const asHandler = (options: Record<string, unknown>) => () => validateOptions(options as CachekitNextOptions);
const asLoader = (options: Record<string, unknown>) => () => cache(async () => 1, { name: 'vocab', backend: new MemoryBackend(), ...options } as CacheOptions);

const KEY = 'ab'.repeat(32);
/** Every shared option: values both vocabularies accept, and values both reject (with the option named). */
const SHARED: Record<keyof typeof COMMON, { good: unknown[]; bad: [unknown, string][] }> = {
  backend: { good: [null, new MemoryBackend()], bad: [[{ get: 1 }, 'backend']] },
  keyPrefix: { good: ['app:'], bad: [[7, 'keyPrefix']] },
  namespace: { good: ['shop'], bad: [[{}, 'namespace']] },
  l1: {
    good: [false, { maxSizeMb: 10 }, { maxSizeMb: 1, maxTtlSeconds: 5 }],
    bad: [
      [{ maxSizeMb: 0 }, 'l1.maxSizeMb'],
      [{ maxTtlSeconds: -1 }, 'l1.maxTtlSeconds'],
      [{ maxSizeMB: 1 }, 'maxSizeMB'],
      ['big', 'l1'],
    ],
  },
  coherenceTtlSeconds: { good: [0.5, 3], bad: [[0, 'coherenceTtlSeconds']] },
  timeoutMs: {
    good: [250],
    bad: [
      [-1, 'timeoutMs'],
      ['1500', 'timeoutMs'],
    ],
  },
  breaker: {
    good: [true, false, { failureThreshold: 3, cooldownMs: 500 }],
    bad: [
      [{ failureThreshold: 0 }, 'breaker.failureThreshold'],
      [{ cooldown: 5 }, 'cooldown'],
      ['on', 'breaker'],
    ],
  },
  encryption: {
    good: [false, new Encryptor({ masterKey: KEY }), { masterKey: KEY, failClosed: true }],
    bad: [
      [{ masterKey: KEY, failClosed: 'yes' }, 'encryption.failClosed'],
      [{ key: KEY }, 'key'],
      ['on', 'encryption'],
    ],
  },
  onError: { good: [() => {}], bad: [['log', 'onError']] },
};

describe('one options vocabulary', () => {
  afterEach(async () => {
    setLogger(null);
    await resetForTests();
  });

  it('names the same options in the schemas and the types', () => {
    expect([handlerNamesMatch, loaderNamesMatch, withCachekitNamesMatch]).toEqual([true, true, true]);
  });

  it('declares every shared option once: the handlers and the loaders hold the very same declaration', () => {
    for (const name of knownNames(COMMON) as (keyof typeof COMMON)[]) {
      expect(HANDLER_OPTIONS[name], name).toBe(COMMON[name]);
      expect(LOADER_OPTIONS[name], name).toBe(COMMON[name]);
      expect(COMMON[name].doc, name).not.toContain('\n');
    }
    for (const name of knownNames(CACHED_FETCH_OPTIONS))
      expect(CACHED_FETCH_OPTIONS[name as keyof typeof CACHED_FETCH_OPTIONS]).toBe(LOADER_OPTIONS[name as never]);
    expect(Object.keys(SHARED).sort()).toEqual(knownNames(COMMON).sort());
  });

  it('has one timeout and one coherence default for pages and loaders', () => {
    expect(COMMON.timeoutMs.default).toBe('1500');
    expect(coreOptions({ backend: null }, 'probe').timeoutMs).toBe(1500);
    expect(coreOptions({ backend: null }, 'probe').coherenceTtlSeconds).toBe(1);
    expect(COMMON.coherenceTtlSeconds.default).toBe('1');
  });

  for (const [name, { good, bad }] of Object.entries(SHARED)) {
    it(`${name}: accepted and rejected alike by the handlers and the loaders`, () => {
      for (const value of good) {
        expect(error(asHandler({ [name]: value })), `handler ${name}=${String(value)}`).toBeUndefined();
        expect(error(asLoader({ [name]: value })), `loader ${name}=${String(value)}`).toBeUndefined();
      }
      for (const [value, option] of bad) {
        for (const [who, run] of [
          ['handler', asHandler({ [name]: value })],
          ['loader', asLoader({ [name]: value })],
        ] as const) {
          const caught = error(run);
          expect(caught, `${who} ${name}=${JSON.stringify(value)}`).toBeInstanceOf(ConfigError);
          expect(caught?.option, `${who} ${name}=${JSON.stringify(value)}`).toBe(option);
          expect(caught?.message).toContain(`\`${option}\``);
        }
      }
    });
  }

  it('rejects an unknown option in every vocabulary, naming it', () => {
    expect(error(asHandler({ keyprefix: 'x' }))?.option).toBe('keyprefix');
    expect(error(asLoader({ keyprefix: 'x' }))?.option).toBe('keyprefix');
    expect(error(() => withCachekit({}, { keyprefix: 'x' } as WithCachekitOptions))?.option).toBe('keyprefix');
    // Function-valued options cannot reach Next's workers: not in withCachekit's vocabulary.
    expect(knownNames(WITH_CACHEKIT_OPTIONS)).not.toContain('onError');
  });

  it('keeps `encryption.tenant` working as a deprecated alias of `tenant`, warning once with the new name', () => {
    const warn = vi.fn();
    setLogger({ info: () => {}, warn });
    process.env.CACHEKIT_MASTER_KEY = KEY;
    try {
      const stack = getStack({ backend: null, namespace: 'vocab', encryption: { tenant: 'acme' } });
      expect(stack.encryptor).toBeDefined();
      getStack({ backend: null, namespace: 'vocab2', encryption: { tenant: 'acme' } });
    } finally {
      delete process.env.CACHEKIT_MASTER_KEY;
    }
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]![0]).toContain('use `tenant`');
  });
});
