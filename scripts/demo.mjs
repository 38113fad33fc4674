// `npm run demo`: builds the package, installs it into examples/demo-app the way a user would (a packed tarball),
// builds the app and serves it on http://localhost:3000 (PORT to change) with the embedded File backend
// (unless CACHEKIT_REDIS_URL, REDIS_URL, CACHEKIT_MEMCACHED_SERVERS, ... select another one).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const app = path.join(root, 'examples', 'demo-app');
const port = process.env.PORT ?? '3000';
const env = { ...process.env, NEXT_TELEMETRY_DISABLED: '1' };
const run = (cmd, args, cwd) => {
  try {
    execFileSync(cmd, args, { cwd, stdio: 'inherit', env });
  } catch (error) {
    process.exit(error.status ?? 1); // the command has printed why
  }
};
const next = path.join(app, 'node_modules', '.bin', 'next');

console.log('== building cachekit-next');
run('npm', ['run', 'build', '--silent'], root);
mkdirSync(path.join(root, '.cache'), { recursive: true });
const packed = execFileSync('npm', ['pack', '--pack-destination', '.cache', '--silent'], { cwd: root, encoding: 'utf8' }).trim().split('\n').pop();
// The examples depend on this fixed name; a rename replaces it in one step.
renameSync(path.join(root, '.cache', packed), path.join(root, '.cache', 'cachekit-next.tgz'));

console.log('== installing it into examples/demo-app');
// npm keeps an installed file: dependency whose version did not change: remove it so the new tarball goes in.
rmSync(path.join(app, 'node_modules', 'cachekit-next'), { recursive: true, force: true });
run('npm', ['install', '--no-package-lock', '--no-audit', '--no-fund', '--loglevel=error'], app);
if (!existsSync(next)) throw new Error('next is not installed in examples/demo-app');

console.log('== next build');
run(next, ['build'], app);

console.log(`== serving on http://localhost:${port} (Ctrl+C to stop)`);
const server = spawn(next, ['start', '-p', port], { cwd: app, env, stdio: 'inherit' });
const stop = () => server.kill('SIGTERM');
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
server.on('exit', (code, signal) => process.exit(code ?? (signal ? 0 : 1)));
