// A tiny HTTP key-value service, standing in for one of yours: an in-memory Map with TTLs.
//   PUT /kv/:key (body: the value, header x-ttl: seconds)   GET | HEAD | DELETE /kv/:key (404 when absent)
//   GET /keys (the live keys, JSON)                           GET /health
import http from 'node:http';

const port = Number(process.env.KV_PORT ?? 4100);
/** @type {Map<string, { value: Buffer, expiresAt: number }>} */
const store = new Map();

function live(key) {
  const entry = store.get(key);
  if (entry && entry.expiresAt <= Date.now()) store.delete(key);
  return store.get(key);
}

const server = http.createServer((req, res) => {
  const { pathname } = new URL(req.url ?? '/', 'http://kv');
  if (pathname === '/health') return res.end('ok');
  if (pathname === '/keys') {
    res.setHeader('content-type', 'application/json');
    return res.end(JSON.stringify([...store.keys()].filter((key) => live(key))));
  }
  if (!pathname.startsWith('/kv/')) {
    res.statusCode = 404;
    return res.end();
  }
  const key = decodeURIComponent(pathname.slice('/kv/'.length));
  if (req.method === 'PUT') {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const ttl = Number(req.headers['x-ttl'] ?? 0);
      store.set(key, { value: Buffer.concat(chunks), expiresAt: ttl > 0 ? Date.now() + ttl * 1000 : Infinity });
      res.statusCode = 204;
      res.end();
    });
    return;
  }
  const entry = live(key);
  res.statusCode = entry ? 200 : 404;
  if (entry && req.method === 'DELETE') store.delete(key);
  res.end(entry && req.method === 'GET' ? entry.value : undefined);
});

// Expired entries nobody reads again would otherwise stay in memory.
setInterval(() => store.forEach((_, key) => live(key)), 60_000).unref();

server.listen(port, '127.0.0.1', () => console.log(`kv-server listening on http://127.0.0.1:${port}`));
