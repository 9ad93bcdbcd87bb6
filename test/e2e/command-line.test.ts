import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { apiClient } from '../helpers/e2e.ts';
import { storeTokens } from '../helpers/connect-directly.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { getToken } from '../peers/get-token.ts';
import { type Peers, startPeers } from '../peers/index.ts';

// The CLI as an admin runs it beside a running server (issue #20): it must open the server's
// database, say which, leave a trace in the Audit Log, and talk TLS to an IP address without
// Node's DEP0123 warning.
const BIN = fileURLToPath(new URL('../../bin/mailroom.js', import.meta.url));
const CLIENT_ID = '5b1e6f2a-3c4d-4e5f-8a9b-0c1d2e3f4a5b';
const CLIENT_SECRET = 'Qw8Q~cli.Test-Secret_Value~0123456789';
const MAILBOX = 'cli@example.test';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const T = { timeout: 120_000 };

let peers: Peers;
let mailroom: MailroomProcess;
let key: string;
let serverId: string;
const api = apiClient(() => mailroom.baseUrl, () => key);

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  mailroom = await startMailroomProcess({ MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost, NODE_EXTRA_CA_CERTS: peers.caFile });
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  const s = await api('POST', '/api/v1/mail-servers', { name: 'By IP', username: MAILBOX, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, smtpHost: '127.0.0.1', smtpPort: peers.dovecot.submissionPort, smtpSecurity: 'starttls' });
  assert.equal(s.status, 201, JSON.stringify(s.json));
  serverId = s.json.id;
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: MAILBOX });
  storeTokens(mailroom.dataDir, serverId, MAILBOX, t, peers.authServer.tenantId);
});

after(async () => {
  await mailroom?.stop();
  await peers?.stop();
});

test('a CLI command without the server\'s DATA_DIR refuses to create a new database, and creates nothing', T, () => {
  const empty = mkdtempSync(join(tmpdir(), 'mailroom-cli-'));
  try {
    const dataDir = join(empty, 'data');
    for (const args of [['apikey', 'create', '--name', 'x', '--scope', 'send'], ['servers', 'list'], ['admin', 'create', '--email', 'a@example.test', '--password', 'a long passphrase']]) {
      const r = spawnSync(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', DATA_DIR: dataDir }, encoding: 'utf8' });
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.doesNotMatch(r.stdout, /mr_/);
      assert.match(r.stderr, /Refusing to create a new, empty Mailroom/);
      assert.match(r.stderr, new RegExp(`${join(dataDir, 'mailroom.sqlite').replace(/[.\\/]/g, '\\$&')}`));
      assert.match(r.stderr, /server's environment \(its DATA_DIR, or DATABASE_URL and MAILROOM_SECRET_KEY\)/);
      assert.ok(!existsSync(dataDir) || readdirSync(dataDir).length === 0, `${args.join(' ')} created files: ${existsSync(dataDir) ? readdirSync(dataDir).join(', ') : ''}`);
    }
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

test('each CLI command says which database it opened, on stderr', T, () => {
  const r = spawnSync(process.execPath, [BIN, 'servers', 'list'], { env: mailroom.env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  // Other stderr lines may come first (bin/mailroom.js says when it runs the sources, not dist/).
  const named = r.stderr.split('\n').filter((l) => l.startsWith('Using the database'));
  assert.deepEqual(named, [`Using the database SQLite ${join(mailroom.dataDir, 'mailroom.sqlite')}`]);
  assert.doesNotMatch(r.stdout, /Using the database/);
});

test('servers test against an IP address runs TLS without DEP0123, and the CLI actions are in the Audit Log as "command line"', T, async () => {
  const out = await mailroom.cli('servers', 'test', serverId);
  assert.match(out, /Connection Test Successful!/);
  assert.doesNotMatch(out, /DEP0123|ServerName to an IP address/);
  await mailroom.cli('admin', 'create', '--email', 'shell@example.test', '--password', 'a long passphrase');
  // The running server's own connections do not warn either. IMAP first: Node prints a deprecation
  // once per process, so the SMTP connection after it would hide an IMAP warning.
  const incoming = await api('POST', '/api/v1/incoming-servers', { name: 'IMAP by IP', imapHost: '127.0.0.1', imapPort: peers.dovecot.imapsPort, imapSecurity: 'tls', username: MAILBOX, folder: 'INBOX', afterFetch: 'leave', intervalMinutes: 1440, tokenSourceId: serverId });
  assert.equal(incoming.status, 201, incoming.text);
  const imap = await api('POST', `/api/v1/incoming-servers/${incoming.json.id}/test`);
  assert.equal(imap.json.ok, true, imap.text);
  assert.doesNotMatch(mailroom.output(), /DEP0123|ServerName to an IP address/);
  const smtp = await api('POST', `/api/v1/mail-servers/${serverId}/test`);
  assert.equal(smtp.json.ok, true, smtp.text);
  assert.doesNotMatch(mailroom.output(), /DEP0123|ServerName to an IP address/);
  const events = (await api('GET', '/api/v1/audit-events?limit=50')).json.items as Array<{ actor: string; action: string; targetId: string | null }>;
  const actor = `command line (${userInfo().username})`;
  for (const action of ['apikey.created', 'mail_server.tested', 'admin.created']) {
    assert.ok(events.some((e) => e.action === action && e.actor === actor), `${action} by ${actor} in ${JSON.stringify(events)}`);
  }
  assert.ok(events.some((e) => e.action === 'mail_server.tested' && e.targetId === serverId && e.actor === actor));
});
