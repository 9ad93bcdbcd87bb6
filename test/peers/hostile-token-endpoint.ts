// A token endpoint that misbehaves on purpose, in front of the test authorization server: HTTPS with the
// test CA on 127.0.0.1, standing in for MICROSOFT_AUTHORITY_HOST (or GOOGLE_TOKEN_HOST). Token requests
// (POST …/token) get the behaviour set for their client_id; everything else, and `pass`, is forwarded to
// the real authorization server, so tokens issued in `pass` work at Dovecot and the Graph stand-in (a
// refresh answer without its id_token, whose issuer names the authorization server's host).
//
//   silent         the connection is accepted and the request read; no answer ever comes
//   drip           200 and the start of a JSON answer, then one byte a second, without end
//   endless        200 and a JSON answer that never ends, as fast as the client reads
//   huge-token     200 and a well-formed answer whose access_token is 10 MB (no Content-Length)
//   long-token     200 and a well-formed 100 KB answer: its access_token is 100 KB
//   graph-consent-missing
//                  a refresh asking for Microsoft Graph gets Microsoft's AADSTS65001 invalid_grant (the grant
//                  was consented for SMTP and IMAP only); other requests pass
import { randomUUID } from 'node:crypto';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type TokenEndpointBehavior = 'pass' | 'silent' | 'drip' | 'endless' | 'huge-token' | 'long-token' | 'graph-consent-missing';

export const HUGE_TOKEN_BYTES = 10 * 1024 * 1024;
export const LONG_TOKEN_BYTES = 100 * 1024;
/** Every oversized token is made of this letter, so a test can look for it where it must not be. */
export const OVERSIZED_TOKEN_CHAR = 'Q';

export interface HostileTokenEndpointOptions {
  tls: { cert: string; key: string };
  /** The real authorization server (AuthServer.authorityHost) and the CA it is signed by. */
  upstream: { authorityHost: string; ca: string };
}

export interface TokenRequestSeen {
  clientId: string;
  grantType: string;
  scope: string;
  behavior: TokenEndpointBehavior;
  at: Date;
  /** When the connection carrying the answer closed or the answer ended (the client gave up, or read it all). */
  closedAt?: Date;
  /** Bytes of the answer written before that. */
  bytes: number;
}

export interface HostileTokenEndpoint {
  /** `https://127.0.0.1:PORT`: MICROSOFT_AUTHORITY_HOST for Mailroom. */
  authorityHost: string;
  /** Token requests of this client id get `behavior` from now on (default: pass). */
  behave(clientId: string, behavior: TokenEndpointBehavior): void;
  /** Token requests received, whatever their answer. */
  requests: TokenRequestSeen[];
  /** Answers still being written or awaited: a client that gave up has closed them. */
  pending(): number;
  close(): Promise<void>;
}

const GRAPH = 'https://graph.microsoft.com/';

function msConsentMissing(clientId: string) {
  const traceId = randomUUID();
  const correlationId = randomUUID();
  const timestamp = new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  return {
    error: 'invalid_grant',
    error_description: `AADSTS65001: The user or administrator has not consented to use the application with ID '${clientId}' named 'Mailroom'. Send an interactive authorization request for this user and resource.\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
    error_codes: [65001],
    timestamp,
    trace_id: traceId,
    correlation_id: correlationId,
    error_uri: 'https://login.microsoftonline.com/error?code=65001',
    suberror: 'consent_required',
  };
}

export async function startHostileTokenEndpoint(opts: HostileTokenEndpointOptions): Promise<HostileTokenEndpoint> {
  const behaviors = new Map<string, TokenEndpointBehavior>();
  const requests: TokenRequestSeen[] = [];
  const sockets = new Set<Socket>();
  const open = new Set<ServerResponse>();
  const timers = new Set<NodeJS.Timeout>();
  const upstream = new URL(opts.upstream.authorityHost);

  function forward(req: IncomingMessage, res: ServerResponse, body: Buffer, tokenRequest = false) {
    const headers = { ...req.headers, host: upstream.host };
    const out = https.request(
      { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers, ca: opts.upstream.ca },
      (up) => {
        if (!tokenRequest) {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
          return;
        }
        // The id_token's issuer names the authorization server's own host, not this one, and Mailroom
        // checks it against MICROSOFT_AUTHORITY_HOST: it is left out (a refresh answer may come without one).
        const chunks: Buffer[] = [];
        up.on('data', (c: Buffer) => chunks.push(c));
        up.on('end', () => {
          let text = Buffer.concat(chunks).toString('utf8');
          try {
            const json = JSON.parse(text) as Record<string, unknown>;
            delete json.id_token;
            text = JSON.stringify(json);
          } catch {
            // not JSON: passed on as it came
          }
          const { 'content-length': _length, 'transfer-encoding': _te, ...rest } = up.headers;
          res.writeHead(up.statusCode ?? 502, { ...rest, 'content-length': Buffer.byteLength(text) }).end(text);
        });
      },
    );
    out.on('error', () => res.destroy());
    out.end(body);
  }

  /** Writes `next()` chunks while the client reads (backpressure), until it is null or the client hangs up. */
  function stream(res: ServerResponse, seen: TokenRequestSeen, next: () => Buffer | null) {
    const pump = () => {
      for (;;) {
        if (res.destroyed) return;
        const chunk = next();
        if (chunk === null) {
          res.end();
          return;
        }
        seen.bytes += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
    };
    pump();
  }

  function misbehave(behavior: TokenEndpointBehavior, res: ServerResponse, seen: TokenRequestSeen) {
    open.add(res);
    res.on('close', () => {
      open.delete(res);
      seen.closedAt = new Date();
    });
    if (behavior === 'silent') return;
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
    if (behavior === 'drip') {
      res.write('{"token_type":"Bearer","access_token":"');
      const t = setInterval(() => {
        seen.bytes += 1;
        res.write(OVERSIZED_TOKEN_CHAR);
      }, 1000);
      timers.add(t);
      res.on('close', () => {
        clearInterval(t);
        timers.delete(t);
      });
      return;
    }
    const chunk = Buffer.alloc(64 * 1024, OVERSIZED_TOKEN_CHAR);
    if (behavior === 'endless') {
      let first = true;
      stream(res, seen, () => {
        if (!first) return chunk;
        first = false;
        return Buffer.from('{"token_type":"Bearer","expires_in":3600,"access_token":"');
      });
      return;
    }
    const tokenBytes = behavior === 'huge-token' ? HUGE_TOKEN_BYTES : LONG_TOKEN_BYTES;
    const parts = [Buffer.from('{"token_type":"Bearer","expires_in":3600,"scope":"openid","access_token":"')];
    for (let left = tokenBytes; left > 0; left -= chunk.length) parts.push(left >= chunk.length ? chunk : chunk.subarray(0, left));
    parts.push(Buffer.from('","refresh_token":"peer-refresh-token"}'));
    stream(res, seen, () => parts.shift() ?? null);
  }

  const server = https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const path = new URL(req.url ?? '/', 'https://x').pathname;
      if (req.method !== 'POST' || !path.endsWith('/token')) return forward(req, res, body);
      const params = new URLSearchParams(body.toString('utf8'));
      const clientId = params.get('client_id') ?? '';
      const scope = params.get('scope') ?? '';
      const grantType = params.get('grant_type') ?? '';
      let behavior = behaviors.get(clientId) ?? 'pass';
      if (behavior === 'graph-consent-missing' && !(grantType === 'refresh_token' && scope.includes(GRAPH))) behavior = 'pass';
      const seen: TokenRequestSeen = { clientId, grantType, scope, behavior, at: new Date(), bytes: 0 };
      requests.push(seen);
      if (behavior === 'pass') return forward(req, res, body, grantType === 'refresh_token');
      if (behavior === 'graph-consent-missing') {
        res.writeHead(400, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }).end(JSON.stringify(msConsentMissing(clientId)));
        return;
      }
      misbehave(behavior, res, seen);
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    authorityHost: `https://127.0.0.1:${port}`,
    behave: (clientId, behavior) => behaviors.set(clientId, behavior),
    requests,
    pending: () => open.size,
    async close() {
      for (const t of timers) clearInterval(t);
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
