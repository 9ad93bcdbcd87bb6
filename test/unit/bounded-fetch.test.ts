import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import { boundedFetch, PeerLimitError } from '../../src/net/bounded-fetch.ts';

// A peer that misbehaves on purpose: an endless body, a lying Content-Length, a silent socket.
let server: Server;
let base: string;
before(async () => {
  server = createServer((req, res) => {
    if (req.url === '/endless') {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const t = setInterval(() => res.write(chunk), 1);
      res.on('close', () => clearInterval(t));
    } else if (req.url === '/declared') {
      res.writeHead(200, { 'content-length': String(400 * 1024 * 1024) });
      res.write('x');
    } else if (req.url === '/silent') {
      // headers never come
    } else if (req.url === '/slow-body') {
      res.writeHead(200);
      const t = setInterval(() => res.write('.'), 50);
      res.on('close', () => clearInterval(t));
    } else if (req.url === '/empty') {
      res.writeHead(204).end();
    } else {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

const rejectsWith = (limit: 'size' | 'time') => (e: unknown) => e instanceof PeerLimitError && e.limit === limit && e.message.includes(base) && !/\/(endless|declared|silent|slow-body)/.test(e.message);

test('a body within the bounds reads as usual', async () => {
  const r = await boundedFetch(`${base}/ok`, {}, { timeoutMs: 2000, maxBytes: 1024 });
  assert.deepEqual(await r.json(), { ok: true });
  assert.equal((await boundedFetch(`${base}/empty`, {}, { timeoutMs: 2000, maxBytes: 1024 })).status, 204);
});

test('an endless body stops at the size limit, the origin named and never the path', async () => {
  const r = await boundedFetch(`${base}/endless`, {}, { timeoutMs: 10_000, maxBytes: 1024 * 1024 });
  await assert.rejects(r.text(), rejectsWith('size'));
});

test('a Content-Length over the limit is refused before the body is read', async () => {
  await assert.rejects(boundedFetch(`${base}/declared`, {}, { timeoutMs: 5000, maxBytes: 1024 }), rejectsWith('size'));
});

test('headers that never come and a body that never ends both fail at the deadline', async () => {
  const start = Date.now();
  await assert.rejects(boundedFetch(`${base}/silent`, {}, { timeoutMs: 300, maxBytes: 1024 }), rejectsWith('time'));
  const r = await boundedFetch(`${base}/slow-body`, {}, { timeoutMs: 400, maxBytes: 1024 * 1024 });
  await assert.rejects(r.text(), rejectsWith('time'));
  assert.ok(Date.now() - start < 3000);
});

test('an outer signal (shutdown) ends the exchange with its own reason', async () => {
  const stop = new AbortController();
  setTimeout(() => stop.abort(new Error('shutting down')), 100);
  await assert.rejects(boundedFetch(`${base}/silent`, {}, { timeoutMs: 10_000, maxBytes: 1024, signal: stop.signal }), /shutting down/);
});
