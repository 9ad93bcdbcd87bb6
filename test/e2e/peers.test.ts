// Proves the test peers are real and strict: tokens from the authorization server are checked by Dovecot
// through introspection, revocation bites at once, and errors come back in Microsoft's shape.
import assert from 'node:assert/strict';
import { createPublicKey, type JsonWebKey, verify } from 'node:crypto';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import tls from 'node:tls';
import nodemailer from 'nodemailer';
import type SMTPConnection from 'nodemailer/lib/smtp-connection';
import { decodeJwt, getToken, httpsRequest, postToken, refreshTokens, type TokenResponse } from '../peers/get-token.ts';
import { type Peers, startPeers } from '../peers/index.ts';

const ALICE = 'alice@example.test';
const client = { clientId: 'mailroom-test', clientSecret: 'mailroom-test-secret', redirectUris: ['http://127.0.0.1:8765/oauth/callback'] };

let peers: Peers;
let token: TokenResponse;
const authority = () => ({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem });

before(async () => {
  peers = await startPeers({ clients: [client] });
  token = await getToken({ ...authority(), ...client, redirectUri: client.redirectUris[0] ?? '', login: ALICE });
});

after(async () => {
  await peers?.stop();
});

const xoauth2 = (user: string, accessToken: string) =>
  Buffer.from(`user=${user}\x01auth=Bearer ${accessToken}\x01\x01`).toString('base64');

// Dovecot 2.3 submission-login rejects AUTH lines over 1030 bytes, so the token goes on a continuation line.
function xoauth2TwoStep(user: string, accessToken: string) {
  return async (ctx: SMTPConnection.CustomAuthenticationContext) => {
    let reply = await ctx.sendCommand('AUTH XOAUTH2');
    if (reply.status !== 334) throw new Error(`AUTH XOAUTH2 refused: ${reply.response}`);
    reply = await ctx.sendCommand(xoauth2(user, accessToken));
    // A refused token gets a 334 challenge carrying the error JSON, answered with an empty line.
    if (reply.status === 334) reply = await ctx.sendCommand('');
    if (reply.status !== 235) throw Object.assign(new Error(`Invalid login: ${reply.response}`), { responseCode: reply.status });
  };
}

function submission(user: string, accessToken: string) {
  return nodemailer.createTransport({
    host: '127.0.0.1',
    port: peers.dovecot.submissionPort,
    secure: false,
    requireTLS: true,
    tls: { ca: peers.ca.caPem, servername: 'localhost' },
    auth: { type: 'OAuth2', user, accessToken },
    customAuth: { XOAUTH2: xoauth2TwoStep(user, accessToken) },
  });
}

async function assertSubmissionRefuses(user: string, accessToken: string) {
  const transport = submission(user, accessToken);
  try {
    await assert.rejects(transport.verify(), (err: { responseCode?: number }) => err.responseCode === 535);
  } finally {
    transport.close();
  }
}

/** A minimal IMAP client over implicit TLS: enough to authenticate and look into the INBOX. */
async function imap() {
  const socket = tls.connect({ host: '127.0.0.1', port: peers.dovecot.imapsPort, ca: peers.ca.caPem, servername: 'localhost' });
  const lines = createInterface({ input: socket, crlfDelay: Infinity })[Symbol.asyncIterator]();
  const nextLine = async () => {
    const { value, done } = await lines.next();
    if (done) throw new Error('IMAP connection closed');
    return value;
  };
  assert.match(await nextLine(), /^\* OK/);
  let n = 0;
  return {
    async command(text: string): Promise<{ status: string; lines: string[] }> {
      const tag = `a${++n}`;
      socket.write(`${tag} ${text}\r\n`);
      const untagged: string[] = [];
      for (;;) {
        const line = await nextLine();
        if (line.startsWith(`${tag} `)) return { status: line.slice(tag.length + 1), lines: untagged };
        if (line.startsWith('+')) socket.write('\r\n');
        untagged.push(line);
      }
    },
    close: () => socket.destroy(),
  };
}

test('(a) Dovecot submission accepts the token via STARTTLS + two-step XOAUTH2 and relays to the sink', async () => {
  const subject = `peers test ${Date.now()}`;
  const transport = submission(ALICE, token.access_token);
  try {
    const info = await transport.sendMail({ from: ALICE, to: 'bob@example.test', subject, text: 'hello from the peers test' });
    assert.match(info.response, /^250 /);
  } finally {
    transport.close();
  }
  const message = await peers.sink.waitForMessage((m) => m.raw.toString().includes(subject));
  assert.equal(message.from, ALICE);
  assert.deepEqual(message.to, ['bob@example.test']);
});

test('(b) the same token logs in to IMAP with AUTHENTICATE XOAUTH2 and reads the INBOX', async () => {
  const subject = `imap check ${Date.now()}`;
  await peers.dovecot.deliver(ALICE, `From: bob@example.test\r\nTo: ${ALICE}\r\nSubject: ${subject}\r\n\r\nhi\r\n`);
  const session = await imap();
  try {
    const auth = await session.command(`AUTHENTICATE XOAUTH2 ${xoauth2(ALICE, token.access_token)}`);
    assert.match(auth.status, /^OK/);
    assert.match((await session.command('SELECT INBOX')).status, /^OK/);
    const fetched = await session.command('FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])');
    assert.match(fetched.status, /^OK/);
    assert.ok(fetched.lines.some((l) => l.includes(subject)), fetched.lines.join('\n'));
    await session.command('LOGOUT');
  } finally {
    session.close();
  }
});

test('(c) a garbage token gets 535 at submission and NO at IMAP', async () => {
  await assertSubmissionRefuses(ALICE, 'not-a-token');
  const session = await imap();
  try {
    const auth = await session.command(`AUTHENTICATE XOAUTH2 ${xoauth2(ALICE, 'not-a-token')}`);
    assert.match(auth.status, /^NO \[AUTHENTICATIONFAILED\]/);
  } finally {
    session.close();
  }
});

test('(c2) a valid token is refused for another mailbox', async () => {
  await assertSubmissionRefuses('bob@example.test', token.access_token);
});

test('(e) a wrong client secret gets 401 invalid_client AADSTS7000215', async () => {
  const { status, body } = await refreshTokens(authority(), { clientId: client.clientId, clientSecret: 'wrong' }, token.refresh_token);
  assert.equal(status, 401);
  assert.equal(body.error, 'invalid_client');
  assert.deepEqual(body.error_codes, [7000215]);
  assert.match(String(body.error_description), /^AADSTS7000215: .*\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: [0-9a-f-]{36}\r\nTimestamp: /s);
  for (const key of ['timestamp', 'trace_id', 'correlation_id', 'error_uri']) assert.equal(typeof body[key], 'string', key);
});

test('(f) the id_token from /common/ names the real tenant and is signed with the published key', async () => {
  const { tenantId, issuer, authorityHost } = peers.authServer;
  assert.equal(issuer, `${authorityHost}/${tenantId}/v2.0`);
  const claims = decodeJwt(token.id_token);
  assert.equal(claims.iss, issuer);
  assert.equal(claims.tid, tenantId);
  assert.equal(claims.aud, client.clientId);
  assert.equal(claims.preferred_username, ALICE);
  assert.equal(claims.email, ALICE);
  assert.match(String(claims.oid), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.equal(typeof claims.nonce, 'string');
  assert.equal(token.token_type, 'Bearer');
  assert.deepEqual(token.scope.split(' ').sort(), ['https://outlook.office.com/IMAP.AccessAsUser.All', 'https://outlook.office.com/SMTP.Send']);

  const discovery = JSON.parse((await httpsRequest(`${authorityHost}/common/v2.0/.well-known/openid-configuration`, peers.ca.caPem)).text);
  assert.equal(discovery.issuer, `${authorityHost}/{tenantid}/v2.0`);
  const { keys } = JSON.parse((await httpsRequest(discovery.jwks_uri, peers.ca.caPem)).text) as { keys: Array<JsonWebKey & { kid: string }> };
  const [header, payload, signature] = token.id_token.split('.') as [string, string, string];
  const { kid } = JSON.parse(Buffer.from(header, 'base64url').toString()) as { kid: string };
  const jwk = keys.find((k) => k.kid === kid);
  assert.ok(jwk, `no key ${kid} in ${discovery.jwks_uri}`);
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  assert.ok(verify('RSA-SHA256', Buffer.from(`${header}.${payload}`), key, Buffer.from(signature, 'base64url')));
});

test('(d) after revokeGrants the refresh token gets AADSTS50173 and Dovecot refuses the access tokens', async () => {
  const refreshed = await refreshTokens(authority(), client, token.refresh_token);
  assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
  const rotated = refreshed.body as unknown as TokenResponse;
  assert.notEqual(rotated.refresh_token, token.refresh_token, 'refresh tokens rotate');
  const transport = submission(ALICE, rotated.access_token);
  try {
    assert.equal(await transport.verify(), true);
  } finally {
    transport.close();
  }

  await peers.authServer.revokeGrants(ALICE);

  const { status, body } = await refreshTokens(authority(), client, rotated.refresh_token);
  assert.equal(status, 400);
  assert.equal(body.error, 'invalid_grant');
  assert.ok((body.error_codes as number[]).includes(50173), JSON.stringify(body));
  await assertSubmissionRefuses(ALICE, rotated.access_token);
  await assertSubmissionRefuses(ALICE, token.access_token);
});

test('an unknown authorization code gets invalid_grant AADSTS70008', async () => {
  const { status, body } = await postToken(authority(), {
    grant_type: 'authorization_code',
    code: 'no-such-code',
    redirect_uri: client.redirectUris[0] ?? '',
    code_verifier: 'x'.repeat(43),
    client_id: client.clientId,
    client_secret: client.clientSecret,
  });
  assert.equal(status, 400);
  assert.equal(body.error, 'invalid_grant');
  assert.deepEqual(body.error_codes, [70008]);
});

test('an expired client secret gets 401 invalid_client AADSTS7000222 until the client is registered again', async () => {
  peers.authServer.expireClientSecret(client.clientId);
  const expired = await refreshTokens(authority(), client, 'any');
  assert.equal(expired.status, 401);
  assert.equal(expired.body.error, 'invalid_client');
  assert.deepEqual(expired.body.error_codes, [7000222]);

  peers.authServer.upsertClient(client);
  const renewed = await refreshTokens(authority(), client, 'any');
  assert.equal(renewed.body.error, 'invalid_grant');
});
