import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { checkLink, graphCall, GraphError, graphRequest, graphUrl, uploadRequest } from '../../src/graph/graph-client.ts';
import { deltaPage } from '../../src/inbound/graph-fetcher.ts';

// Two peers on this machine: "Graph" (the configured host) and another origin. A token may only ever
// reach the first; answers are bounded and their JSON checked before use.
let graph: Server;
let other: Server;
let host: string;
let otherOrigin: string;
const seen: { graph: IncomingMessage[]; other: IncomingMessage[] } = { graph: [], other: [] };

function listen(s: Server): Promise<string> {
  return new Promise((r) => s.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(s.address() as AddressInfo).port}`)));
}

before(async () => {
  graph = createServer((req, res) => {
    seen.graph.push(req);
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/v1.0/endless' || path === '/v1.0/endless-error') {
      res.writeHead(path === '/v1.0/endless' ? 200 : 500, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const t = setInterval(() => res.write(chunk), 1);
      res.on('close', () => clearInterval(t));
    } else if (path === '/v1.0/slow') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{');
    } else if (path === '/v1.0/number') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('5');
    } else if (path === '/v1.0/html') {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<html>proxy</html>');
    } else {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    }
  });
  other = createServer((req, res) => {
    seen.other.push(req);
    res.writeHead(200).end('{}');
  });
  host = await listen(graph);
  otherOrigin = await listen(other);
});

after(() => {
  for (const s of [graph, other]) {
    s.closeAllConnections();
    s.close();
  }
});

const code = (c: string) => (e: unknown) => e instanceof GraphError && e.evidence.code === c;

test('a token goes only to the Graph host: an absolute URL at another origin is refused before any connection, naming the origin only', async () => {
  const before = seen.other.length;
  await assert.rejects(graphRequest(host, { method: 'GET', path: `${otherOrigin}/v1.0/users/x/delta?$skiptoken=secret`, token: 'tok' }), (e: unknown) => {
    assert.ok(code('ForeignLink')(e));
    const msg = (e as GraphError).message;
    assert.match(msg, new RegExp(`points to ${otherOrigin.replace(/\./g, '\\.')}, not to Microsoft Graph at ${host.replace(/\./g, '\\.')}`));
    assert.ok(!msg.includes('secret') && !msg.includes('/users/x'), msg);
    return true;
  });
  assert.equal(seen.other.length, before, 'nothing reached the other origin');
  // The same host on another port, or another scheme, is another origin.
  assert.throws(() => graphUrl(host, host.replace(/:\d+$/, ':1') + '/v1.0/x'), code('ForeignLink'));
  assert.throws(() => graphUrl(host, host.replace('http:', 'https:') + '/v1.0/x'), code('ForeignLink'));
  // Relative paths and links at the Graph host itself are taken.
  assert.equal(graphUrl(host, '/users/a').href, `${host}/v1.0/users/a`);
  assert.equal(await graphCall(host, { method: 'GET', path: `${host}/v1.0/ok`, token: 'tok' }).then((r) => r.ok), true);
  assert.equal(seen.graph.at(-1)!.headers.authorization, 'Bearer tok');
});

test('a link that is not a string or not absolute is an InvalidResponse', () => {
  assert.throws(() => checkLink(host, 7, '@odata.nextLink'), code('InvalidResponse'));
  assert.throws(() => checkLink(host, '/v1.0/x', '@odata.nextLink'), code('InvalidResponse'));
  assert.throws(() => checkLink(host, 'not a url', '@odata.nextLink'), code('InvalidResponse'));
  assert.equal(checkLink(host, `${host}/v1.0/x?$deltatoken=1`, '@odata.deltaLink'), `${host}/v1.0/x?$deltatoken=1`);
});

test('an upload-session URL must be https; its request has no token to send (the stand-in refuses one: graph-send.test.ts)', async () => {
  const before = seen.other.length;
  await assert.rejects(uploadRequest(`${otherOrigin}/upload/1`, { method: 'PUT', body: Buffer.from('x') }), (e: unknown) => code('InvalidResponse')(e) && /not an https URL/.test((e as Error).message));
  await assert.rejects(uploadRequest('not a url', { method: 'PUT', body: Buffer.from('x') }), code('InvalidResponse'));
  assert.equal(seen.other.length, before);
});

test('answers are bounded: an endless JSON body stops at the limit, an endless error body is read to 64 KB, a stalled one ends at its deadline', async () => {
  await assert.rejects(graphCall(host, { method: 'GET', path: '/endless', maxBytes: 1024 * 1024 }), (e: unknown) => code('ResponseTooLarge')(e) && /larger than 1 MB/.test((e as Error).message));
  await assert.rejects(graphCall(host, { method: 'GET', path: '/endless-error' }), (e: unknown) => e instanceof GraphError && e.evidence.status === 500 && e.evidence.code === 'HTTP_500' && e.evidence.message.length <= 500);
  const started = Date.now();
  await assert.rejects(graphCall(host, { method: 'GET', path: '/slow', timeoutMs: 300 }), code('ResponseTimeout'));
  assert.ok(Date.now() - started < 2000);
  const abort = new AbortController();
  const p = graphCall(host, { method: 'GET', path: '/slow', signal: abort.signal });
  abort.abort();
  await assert.rejects(p, (e: unknown) => (e as { code?: string }).code === 'MR_GRAPH_UNREACHABLE' || code('ResponseTimeout')(e));
});

test('a success that is not a JSON object is an InvalidResponse', async () => {
  await assert.rejects(graphCall(host, { method: 'GET', path: '/number' }), (e: unknown) => code('InvalidResponse')(e) && /the body is number, not an object/.test((e as Error).message));
  await assert.rejects(graphCall(host, { method: 'GET', path: '/html' }), (e: unknown) => code('InvalidResponse')(e) && /not JSON/.test((e as Error).message));
});

test('a delta page is used only when value is a list of objects with string ids and its links are strings at the Graph host', () => {
  const ok = deltaPage(host, { value: [{ id: 'a' }, { id: 'b', '@removed': { reason: 'deleted' } }, { id: 'a' }], '@odata.deltaLink': `${host}/v1.0/d?$deltatoken=1` });
  assert.deepEqual(ok.ids, ['a']);
  for (const [page, words] of [
    [{ value: 5 }, /"value" is number 5/],
    [{}, /"value" is missing/],
    [{ value: [null] }, /value\[0\] is null/],
    [{ value: ['x'] }, /value\[0\] is string, not a message/],
    [{ value: [{ id: 1 }] }, /value\[0\]\.id is number/],
    [{ value: [{}] }, /value\[0\]\.id is missing/],
    [{ value: [], '@odata.nextLink': ['x'] }, /a link is not a string/],
    [{ value: [] }, /neither @odata\.nextLink nor @odata\.deltaLink/],
  ] as const) {
    assert.throws(() => deltaPage(host, page as Record<string, unknown>), (e: unknown) => code('InvalidResponse')(e) && words.test((e as Error).message), JSON.stringify(page));
  }
  assert.throws(() => deltaPage(host, { value: [], '@odata.nextLink': `${otherOrigin}/v1.0/d?$skiptoken=s` }), code('ForeignLink'));
});
