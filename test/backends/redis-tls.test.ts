import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisBackend } from '../../src/backends/redis.js';
import { BackendError } from '../../src/protocol/backend.js';
import { startTlsRedis, type TlsRedisHandle } from '../support/redis-servers.js';

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | null) => (value === null ? null : Buffer.from(value).toString());

// Debian's redis-server 7 is built with TLS; the server below listens with TLS only.
describe('RedisBackend (TLS)', () => {
  let server: TlsRedisHandle;
  beforeAll(async () => {
    server = await startTlsRedis();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('connects to a rediss:// URL trusting the given CA', async () => {
    const backend = new RedisBackend({ url: server.url, tls: { ca: server.ca }, keyPrefix: 'tls:' });
    try {
      await backend.set('k', bytes('over TLS'));
      expect(text(await backend.get('k'))).toBe('over TLS');
      expect((await backend.healthCheck())[0]).toBe(true);
    } finally {
      await backend.close();
    }
  });

  it('refuses an untrusted certificate with kind authentication', async () => {
    const backend = new RedisBackend({ url: server.url, connectTimeoutMs: 1_000, commandTimeoutMs: 500 });
    try {
      for (let i = 0; i < 2; i++) {
        const error = await backend.get('k').then(
          () => new Error('resolved'),
          (e: unknown) => e,
        );
        expect(BackendError.is(error), String(error)).toBe(true);
        expect((error as BackendError).kind).toBe('authentication');
        expect((error as BackendError).message).toMatch(/self[- ]signed/i);
      }
    } finally {
      await backend.close();
    }
  });

  it('can be told not to verify the certificate', async () => {
    const backend = new RedisBackend({ url: server.url, tls: { rejectUnauthorized: false } });
    try {
      await backend.set('k', bytes('unverified'));
      expect(text(await backend.get('k'))).toBe('unverified');
    } finally {
      await backend.close();
    }
  });

  it('does not talk plain text to a TLS-only server', async () => {
    const backend = new RedisBackend({ url: server.url.replace('rediss:', 'redis:'), connectTimeoutMs: 1_000, commandTimeoutMs: 500 });
    try {
      const error = await backend.get('k').then(
        () => new Error('resolved'),
        (e: unknown) => e,
      );
      expect(BackendError.is(error), String(error)).toBe(true);
      expect(['transient', 'timeout']).toContain((error as BackendError).kind);
    } finally {
      await backend.close();
    }
  });
});
