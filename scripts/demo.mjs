// `npm run demo`: builds the package, installs it into the example app the way a user would (a packed tarball),
// builds the app and serves it on http://localhost:3000 (PORT to change) with the embedded File backend
// (unless CACHEKIT_REDIS_URL, REDIS_URL, CACHEKIT_MEMCACHED_SERVERS, ... select another one).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const app = path.join(root, 'examples', 'isr-app');
const port = process.env.PORT ?? '3000';
const env = { ...process.env, NEXT_TELEMETRY_DISABLED: '1' };
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: 'inherit', env });

console.log('== building cachekit-next');
run('npm', ['run', 'build', '--silent'], root);
for (const file of readdirSync(path.join(root, '.cache'), { withFileTypes: true }).filter((f) => f.name.endsWith('.tgz'))) {
  rmSync(path.join(root, '.cache', file.name));
}
const packed = execFileSync('npm', ['pack', '--pack-destination', '.cache', '--silent'], { cwd: root, encoding: 'utf8' }).trim().split('\n').pop();
renameSync(path.join(root, '.cache', packed), path.join(root, '.cache', 'cachekit-next.tgz'));

console.log('== installing it into examples/isr-app');
rmSync(path.join(app, 'node_modules', 'cachekit-next'), { recursive: true, force: true });
run('npm', ['install', '--no-package-lock', '--no-audit', '--no-fund', '--loglevel=error'], app);

// The example's pages fetch from an upstream API: a tiny one that counts its requests, so refetches show.
let n = 0;
const upstream = http.createServer((_req, res) => {
  n++;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ n, at: Date.now() }));
});
await new Promise((resolve) => upstream.listen(0, '127.0.0.1', resolve));
env.DATA_URL = `http://127.0.0.1:${upstream.address().port}`;

console.log('== next build');
if (!existsSync(path.join(app, 'node_modules', '.bin', 'next'))) throw new Error('next is not installed in examples/isr-app');
// Asynchronously: the upstream API above lives in this process and must answer the build's fetches.
const built = await new Promise((resolve) => {
  spawn(path.join(app, 'node_modules', '.bin', 'next'), ['build'], { cwd: app, env, stdio: 'inherit' }).on('exit', resolve);
});
if (built !== 0) {
  upstream.close();
  process.exit(1);
}

console.log(`== serving on http://localhost:${port} (Ctrl+C to stop)`);
const server = spawn(path.join(app, 'node_modules', '.bin', 'next'), ['start', '-p', port], { cwd: app, env, stdio: 'inherit' });
const stop = () => {
  server.kill('SIGTERM');
  upstream.close();
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
server.on('exit', (code) => {
  upstream.close();
  process.exit(code ?? 0);
});
