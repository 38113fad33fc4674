/**
 * A mixed fleet on one store: instances with the native LZ4 module, with only its WebAssembly build, and with neither
 * (lz4-napi not shipped, lz4-wasm-nodejs not installed) write pages (entry frames) and `cache(fn)` values (envelopes);
 * every other kind of instance reads every one of them back: hits, identical values, no fault reported. Each instance
 * is its own Node process on the built package (`npm run build`), on one File backend directory.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const execFileAsync = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'ck-mixed-lz4-'));
const store = path.join(tmp, 'store');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

type Kind = 'native' | 'wasm' | 'none';
const KINDS: Kind[] = ['native', 'wasm', 'none'];

// Makes lz4-wasm-nodejs unresolvable, as when it is not installed.
const hideWasm = path.join(tmp, 'hide-wasm.cjs');
writeFileSync(
  hideWasm,
  `const Module = require('node:module');
   const resolve = Module._resolveFilename;
   Module._resolveFilename = function (request, ...rest) {
     if (request === 'lz4-wasm-nodejs') throw Object.assign(new Error("Cannot find module 'lz4-wasm-nodejs'"), { code: 'MODULE_NOT_FOUND' });
     return resolve.call(this, request, ...rest);
   };\n`,
);

// One instance: writes its own page and loader value, or reads every writer's; prints what it saw as JSON.
const instance = path.join(tmp, 'instance.mjs');
writeFileSync(
  instance,
  `import { cache, FileBackend, setLogger } from ${JSON.stringify(pathToFileURL(path.join(root, 'dist', 'index.js')).href)};
   import { createCacheHandler } from ${JSON.stringify(pathToFileURL(path.join(root, 'dist', 'handler.js')).href)};
   const [mode, me, ...writers] = process.argv.slice(2);
   const warnings = [];
   const faults = [];
   setLogger({ info: () => {}, warn: (m) => warnings.push(m) });
   const writes = [];
   class RecordingFileBackend extends FileBackend {
     async set(key, value, ttl) {
       writes.push({ key, bytes: value.length, flags: value[2] });
       return super.set(key, value, ttl);
     }
   }
   const backend = new RecordingFileBackend({ cacheDir: ${JSON.stringify(store)} });
   const Handler = createCacheHandler({ backend, namespace: 'fleet', l1: false, onError: (e) => faults.push(e.message) });
   const html = (who) => '<!DOCTYPE html><ul>' + Array.from({ length: 400 }, (_, i) => '<li>item ' + i + ' by ' + who + '</li>').join('') + '</ul>';
   const loader = (who) => cache(async () => (mode === 'write' ? { by: who, rows: Array.from({ length: 300 }, (_, i) => ({ i, label: 'row ' + i + ' of ' + who })) } : 'recomputed'), { backend, name: 'rows-' + who, namespace: 'fleet', l1: false, ttl: 600 });
   const handler = new Handler({});
   const out = { warnings, faults, writes, pages: {}, loaders: {} };
   if (mode === 'write') {
     await handler.set('page-' + me, { kind: 'APP_PAGE', html: html(me), rscData: Buffer.from('rsc ' + me), headers: {}, status: 200 }, { cacheControl: { revalidate: 600, expire: 900 } });
     out.loaders[me] = await loader(me)();
   } else {
     for (const who of writers) {
       const entry = await handler.get('page-' + who, { kind: 'APP_PAGE', isRoutePPREnabled: false, tags: [], softTags: [] });
       out.pages[who] = entry && entry.value.html === html(who);
       const value = await loader(who)();
       out.loaders[who] = value !== 'recomputed' && value.by === who && value.rows.length === 300;
     }
   }
   console.log(JSON.stringify(out));
   process.exit(0);\n`,
);

interface Seen {
  warnings: string[];
  faults: string[];
  writes: { key: string; bytes: number; flags: number }[];
  pages: Record<string, boolean>;
  loaders: Record<string, unknown>;
}

async function run(kind: Kind, args: string[]): Promise<Seen> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  if (kind !== 'native') env.NAPI_RS_NATIVE_LIBRARY_PATH = '/nonexistent/lz4-napi.node'; // the native load fails
  const flags = kind === 'none' ? ['--require', hideWasm] : [];
  const { stdout } = await execFileAsync(process.execPath, [...flags, instance, ...args], { cwd: tmp, env, timeout: 60_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as never;
}

describe('instances with and without native LZ4 on one store', () => {
  it('each kind writes; every kind reads every entry back (hits, same values, no fault)', { timeout: 120_000 }, async () => {
    const stored: Record<string, { page: { bytes: number; flags: number }; loader: { bytes: number } }> = {};
    for (const kind of KINDS) {
      const wrote = await run(kind, ['write', kind]);
      expect(wrote.faults, kind).toEqual([]);
      expect((wrote.loaders[kind] as { by: string }).by).toBe(kind);
      // What it says about its compressor: nothing natively, once otherwise.
      expect(wrote.warnings.filter((w) => w.includes('LZ4')).length, kind).toBe(kind === 'native' ? 0 : 1);
      stored[kind] = {
        page: wrote.writes.find((w) => w.key.endsWith(`page-${kind}`))!,
        loader: wrote.writes.find((w) => w.key.includes(`:fn:rows-${kind}:`))!,
      };
    }
    console.log(
      `[lz4 fleet] bytes stored (page frame / cache(fn) envelope): ${KINDS.map((k) => `${k} ${stored[k]!.page.bytes} / ${stored[k]!.loader.bytes}`).join(', ')}`,
    );
    // Frames: LZ4 with the native module or without it; deflate only where no LZ4 loads.
    expect(KINDS.map((k) => stored[k]!.page.flags & 0x03)).toEqual([0x02, 0x02, 0x01]);
    // Envelopes stay compressed without the native module; only with no LZ4 at all are they stored literally.
    expect(stored.wasm!.loader.bytes).toBeLessThan(stored.none!.loader.bytes / 3);
    expect(stored.native!.loader.bytes).toBeLessThan(stored.none!.loader.bytes / 3);
    for (const kind of KINDS) {
      const read = await run(kind, ['read', kind, ...KINDS]);
      expect(read.faults, `${kind} reading`).toEqual([]);
      expect(read.pages, `${kind} reading pages`).toEqual({ native: true, wasm: true, none: true });
      expect(read.loaders, `${kind} reading cache(fn) values`).toEqual({ native: true, wasm: true, none: true });
    }
  });
});
