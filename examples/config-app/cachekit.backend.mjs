// The app's backend, imported once by every process that loads the cache handlers (next build workers, next start).
// A File backend in STORE_DIR that also records each write (process, phase, key), so the e2e test can see who wrote.
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { FileBackend } from 'cachekit-next';

const dir = path.resolve(process.env.STORE_DIR || '.cachekit-store');

class RecordingFileBackend extends FileBackend {
  async set(key, value, ttlSeconds) {
    await super.set(key, value, ttlSeconds);
    appendFileSync(path.join(dir, 'writes.log'), `${process.pid} ${process.env.NEXT_PHASE || '-'} ${key}\n`);
  }
}

export default new RecordingFileBackend({ cacheDir: path.join(dir, 'entries') });
