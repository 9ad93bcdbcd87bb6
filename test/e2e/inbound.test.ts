import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import SQLite from 'better-sqlite3';
import { ImapFlow } from 'imapflow';
import { asAdminInBrowser } from '../helpers/browser.ts';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { storeTokens } from '../helpers/connect-directly.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { getToken } from '../peers/get-token.ts';
import { type Peers, startPeers } from '../peers/index.ts';

// Incoming mail against Dovecot IMAP checking the OAuth tokens: exactly-once import, parsed fields,
// after-fetch actions visible in the mailbox, restarts, UIDVALIDITY changes, token refresh and
// revocation, and signed webhooks with retries.
const CLIENT_ID = '2b3c4d5e-6f70-4a1b-8c2d-3e4f5a6b7c8d';
const CLIENT_SECRET = 'In8Q~inbound.Test-Secret_Value~0123456789';
const MAILBOX = 'inbox@example.test';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const T = { timeout: 180_000 };

let peers: Peers;
let mailroom: MailroomProcess;
let env: Record<string, string>;
let port: number;
let key: string;
let outgoingId: string;
let incomingId: string;
let receiver: Server;
let hookSecret: string;
const received: Array<{ deliveryId: string; messageId: string; subject: string; signatureOk: boolean }> = [];
let failNext = 0;

const api = apiClient(() => mailroom.baseUrl, () => key);

let n = 0;
function rawMessage(subject: string, extra: string[] = [], body = 'Hello from the test.'): { raw: string; messageId: string } {
  const messageId = `<inbound-${Date.now()}-${++n}@sender.example>`;
  const raw = [
    'From: Customer <customer@sender.example>',
    `To: ${MAILBOX}`,
    `Subject: ${subject}`,
    `Message-ID: ${messageId}`,
    'Date: Sat, 28 Nov 2026 09:00:00 +0000',
    'MIME-Version: 1.0',
    ...extra,
    'Content-Type: text/plain; charset=utf-8',
    '',
    body,
    '',
  ].join('\r\n');
  return { raw, messageId };
}

async function fetchNow(expectedTotal: number) {
  await waitFor('the previous fetch to end', async () => ((await api('GET', `/api/v1/incoming-servers/${incomingId}`)).json.fetch.running ? undefined : true));
  const r = await api('POST', `/api/v1/incoming-servers/${incomingId}/fetch`);
  assert.ok(r.status === 202 || r.status === 409, r.text);
  return waitFor(`${expectedTotal} imported messages`, async () => {
    const s = (await api('GET', `/api/v1/incoming-servers/${incomingId}`)).json;
    return !s.fetch.running && s.importedCount >= expectedTotal ? s : undefined;
  });
}

async function allInbound(): Promise<any[]> {
  const out: any[] = [];
  let after: string | null = null;
  for (;;) {
    const r: { items: any[]; nextCursor: string | null } = (await api('GET', `/api/v1/inbound-messages?limit=50${after ? `&after=${after}` : ''}`)).json;
    out.push(...r.items);
    if (!r.items.length) return out;
    after = r.nextCursor;
  }
}

async function imap<T>(run: (c: ImapFlow) => Promise<T>): Promise<T> {
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: MAILBOX });
  const c = new ImapFlow({ host: '127.0.0.1', port: peers.dovecot.imapsPort, secure: true, auth: { user: MAILBOX, accessToken: t.access_token }, tls: { ca: peers.ca.caPem, servername: 'localhost' }, logger: false });
  await c.connect();
  try {
    return await run(c);
  } finally {
    await c.logout();
  }
}

async function connect(serverId: string) {
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: MAILBOX });
  storeTokens(mailroom.dataDir, serverId, MAILBOX, t, peers.authServer.tenantId);
}

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const sig = String(req.headers['x-mailroom-signature'] ?? '');
      const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(sig) ?? [];
      const signatureOk = !!t && v1 === createHmac('sha256', hookSecret).update(`${t}.${body}`).digest('hex');
      if (failNext > 0) {
        failNext--;
        res.writeHead(500).end('not now');
        return;
      }
      const payload = JSON.parse(body);
      received.push({ deliveryId: payload.id, messageId: payload.message.messageId, subject: payload.message.subject, signatureOk });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  env = {
    MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost,
    NODE_EXTRA_CA_CERTS: peers.caFile,
    WEBHOOK_RETRY_BASE_SECONDS: '0.2',
  };
  mailroom = await startMailroomProcess(env);
  port = Number(new URL(mailroom.baseUrl).port);
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;

  const hook = await api('POST', '/api/v1/webhooks', { url: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/mailroom`, description: 'ERP inbox' });
  assert.equal(hook.status, 201, hook.text);
  hookSecret = hook.json.secret;

  const out = await api('POST', '/api/v1/mail-servers', { name: 'Inbox SMTP', username: MAILBOX, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, smtpHost: '127.0.0.1', smtpPort: peers.dovecot.submissionPort });
  assert.equal(out.status, 201, out.text);
  outgoingId = out.json.id;
  await connect(outgoingId);
});

after(async () => {
  if (process.env.E2E_DEBUG) (await import('node:fs')).writeFileSync('/tmp/mailroom-inbound.log', mailroom?.output() ?? '');
  await mailroom?.stop();
  await new Promise((r) => receiver?.close(r));
  await peers?.stop();
});

test('an incoming server reuses the outgoing connection for the same mailbox, and Test & Confirm counts the folder', T, async () => {
  const offer = await api('GET', `/api/v1/incoming-servers/reusable-connections?username=${encodeURIComponent(MAILBOX)}`);
  assert.deepEqual(offer.json.items.map((i: { mailServerId: string }) => i.mailServerId), [outgoingId]);
  const created = await api('POST', '/api/v1/incoming-servers', {
    name: 'Inbox',
    imapHost: '127.0.0.1',
    imapPort: peers.dovecot.imapsPort,
    imapSecurity: 'tls',
    username: MAILBOX,
    folder: 'INBOX',
    afterFetch: 'mark_read',
    intervalMinutes: 1440,
    tokenSourceId: outgoingId,
  });
  assert.equal(created.status, 201, created.text);
  incomingId = created.json.id;
  assert.equal(created.json.tokenStatus, 'valid');
  assert.equal(created.json.tokenSourceName, 'Inbox SMTP');
  await peers.dovecot.deliver(MAILBOX, rawMessage('Before the first fetch').raw);
  const r = await api('POST', `/api/v1/incoming-servers/${incomingId}/test`);
  assert.equal(r.json.ok, true, r.text);
  assert.match(r.json.message, /^Connection Test Successful! 1 message in INBOX$/);
});

test('messages are imported once with their parsed fields, marked read in the mailbox, and a reply is linked to the sent message', T, async () => {
  const sent = await api('POST', '/api/v1/messages', { from: MAILBOX, to: ['customer@sender.example'], subject: 'Quote 7', text: 'Our quote.' });
  assert.equal(sent.status, 202);
  const quoteId = sent.json.messageId;
  await waitFor('the quote to be sent', async () => ((await api('GET', `/api/v1/messages/${sent.json.id}`)).json.state === 'sent' ? true : undefined));

  const attachment = Buffer.from('%PDF-1.4 test invoice').toString('base64');
  const withAttachment = [
    'From: Billing <billing@sender.example>',
    `To: ${MAILBOX}`,
    'Cc: Accounts <accounts@example.test>',
    'Subject: Invoice 2026-7',
    'Message-ID: <invoice-2026-7@sender.example>',
    'Date: Sat, 28 Nov 2026 10:30:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Invoice attached.',
    '--b1',
    'Content-Type: application/pdf; name="invoice.pdf"',
    'Content-Disposition: attachment; filename="invoice.pdf"',
    'Content-Transfer-Encoding: base64',
    '',
    attachment,
    '--b1--',
    '',
  ].join('\r\n');
  await peers.dovecot.deliver(MAILBOX, withAttachment);
  const reply = rawMessage('Re: Quote 7', [`In-Reply-To: ${quoteId}`, `References: ${quoteId}`], 'We accept.');
  await peers.dovecot.deliver(MAILBOX, reply.raw);

  await fetchNow(3);
  const items = await allInbound();
  assert.equal(items.length, 3);
  const inv = items.find((m) => m.subject === 'Invoice 2026-7');
  assert.equal(inv.messageId, '<invoice-2026-7@sender.example>');
  assert.equal(inv.from, 'Billing <billing@sender.example>');
  assert.deepEqual(inv.to, [MAILBOX]);
  assert.deepEqual(inv.cc, ['Accounts <accounts@example.test>']);
  assert.equal(inv.date, '2026-11-28T10:30:00.000Z');
  assert.deepEqual(inv.attachments, [{ filename: 'invoice.pdf', contentType: 'application/pdf', size: 21 }]);
  const full = (await api('GET', `/api/v1/inbound-messages/${inv.id}`)).json;
  assert.match(full.text, /Invoice attached\./);
  const raw = await api('GET', `/api/v1/inbound-messages/${inv.id}/raw`);
  assert.ok(raw.text.includes(attachment), 'the raw message is kept byte for byte');

  const rep = items.find((m) => m.subject === 'Re: Quote 7');
  assert.equal(rep.inReplyTo, quoteId);
  assert.equal(rep.inReplyToOutboxId, sent.json.id);

  const unseen = await imap(async (c) => {
    await c.mailboxOpen('INBOX');
    return c.search({ seen: false }, { uid: true });
  });
  assert.deepEqual(unseen, [], 'mark as read changed the mailbox');

  await fetchNow(3);
  assert.equal((await allInbound()).length, 3, 'a second fetch imports nothing again');
});

test('new mail arrives within seconds through IMAP IDLE, without Fetch Now and with a one-day interval', T, async () => {
  await waitFor('the IDLE connection', async () => ((await api('GET', `/api/v1/incoming-servers/${incomingId}`)).json.idle ? true : undefined));
  await waitFor('no fetch running', async () => ((await api('GET', `/api/v1/incoming-servers/${incomingId}`)).json.fetch.running ? undefined : true));
  const before = (await api('GET', `/api/v1/incoming-servers/${incomingId}`)).json.importedCount;
  const m = rawMessage('Pushed by IDLE');
  await peers.dovecot.deliver(MAILBOX, m.raw);
  await waitFor('the IDLE-triggered import', async () => ((await allInbound()).some((x) => x.messageId === m.messageId) ? true : undefined), 20_000);
  assert.equal((await api('GET', `/api/v1/incoming-servers/${incomingId}`)).json.importedCount, before + 1);
});

test('the webhook receiver gets each message once with a valid signature, and a 500 is retried', T, async () => {
  await waitFor('four webhook deliveries', async () => (received.length >= 4 ? true : undefined));
  failNext = 1;
  const m = rawMessage('Webhook retry');
  await peers.dovecot.deliver(MAILBOX, m.raw);
  await fetchNow(5);
  await waitFor('the retried delivery', async () => (received.some((r) => r.messageId === m.messageId) ? true : undefined));
  assert.ok(received.every((r) => r.signatureOk), 'every signature verifies');
  const perMessage = new Map<string, number>();
  for (const r of received) perMessage.set(r.messageId, (perMessage.get(r.messageId) ?? 0) + 1);
  assert.equal(perMessage.size, 5);
  assert.ok([...perMessage.values()].every((c) => c === 1), 'each message delivered once');
  const inbound = (await allInbound()).find((x) => x.messageId === m.messageId);
  const detail = (await api('GET', `/api/v1/inbound-messages/${inbound.id}`)).json;
  assert.equal(detail.deliveries[0].state, 'delivered');
  assert.equal(detail.deliveries[0].attempts, 2);
});

test('a mark-as-read that a crash or a failed command left undone is applied by the next fetch', T, async () => {
  const m = rawMessage('Marked read later');
  await peers.dovecot.deliver(MAILBOX, m.raw);
  const before = (await allInbound()).length;
  await fetchNow(before + 1);
  // As a crash between the import's commit and the STORE command would leave it: imported, unread.
  const unread = () =>
    imap(async (c) => {
      await c.mailboxOpen('INBOX');
      return c.search({ seen: false, header: { 'message-id': m.messageId } }, { uid: true });
    });
  await imap(async (c) => {
    await c.mailboxOpen('INBOX');
    const uids = await c.search({ header: { 'message-id': m.messageId } }, { uid: true });
    assert.equal((uids || []).length, 1);
    await c.messageFlagsRemove(uids as number[], ['\\Seen'], { uid: true });
  });
  assert.equal(((await unread()) || []).length, 1);
  const db = new SQLite(join(mailroom.dataDir, 'mailroom.sqlite'));
  try {
    db.prepare('update inbound_messages set after_fetch_pending = 1 where message_id = ?').run(m.messageId);
    await fetchNow(before + 1);
    assert.deepEqual(await unread(), [], 'the next fetch marked it read');
    assert.equal((db.prepare('select after_fetch_pending from inbound_messages where message_id = ?').get(m.messageId) as { after_fetch_pending: number }).after_fetch_pending, 0);
  } finally {
    db.close();
  }
  assert.equal((await allInbound()).length, before + 1, 'nothing imported twice');
});

test('move to a folder and leave as is really change (or keep) the mailbox', T, async () => {
  const before = (await allInbound()).length;
  await api('PATCH', `/api/v1/incoming-servers/${incomingId}`, { afterFetch: 'move', moveToFolder: 'Processed' });
  const moved = rawMessage('Move me');
  await peers.dovecot.deliver(MAILBOX, moved.raw);
  await fetchNow(before + 1);
  const where = await imap(async (c) => {
    const inInbox = await c.mailboxOpen('INBOX').then(() => c.search({ header: { 'message-id': moved.messageId } }, { uid: true }));
    const inProcessed = await c.mailboxOpen('Processed').then(() => c.search({ header: { 'message-id': moved.messageId } }, { uid: true }));
    return { inInbox, inProcessed };
  });
  assert.deepEqual(where.inInbox, []);
  assert.equal((where.inProcessed as number[]).length, 1);

  await api('PATCH', `/api/v1/incoming-servers/${incomingId}`, { afterFetch: 'leave' });
  const left = rawMessage('Leave me unread');
  await peers.dovecot.deliver(MAILBOX, left.raw);
  await fetchNow(before + 2);
  const unseen = await imap(async (c) => {
    await c.mailboxOpen('INBOX');
    return c.search({ seen: false, header: { 'message-id': left.messageId } }, { uid: true });
  });
  assert.equal((unseen as number[]).length, 1, 'the message is still unread');
  await api('PATCH', `/api/v1/incoming-servers/${incomingId}`, { afterFetch: 'mark_read' });
});

test('in the browser: Test & Confirm, Fetch Now, and the Incoming Messages list with delivery state', T, async () => {
  const admin = { email: 'inbox-admin@example.test', password: 'inbox admin passphrase' };
  const m = rawMessage('Seen in the browser');
  await peers.dovecot.deliver(MAILBOX, m.raw);
  await asAdminInBrowser(mailroom, admin, async (page) => {
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByRole('link', { name: 'Incoming Mail Servers', exact: true }).click();
    // A new incoming server for a mailbox that is already connected is offered that connection.
    await page.getByRole('button', { name: 'Add' }).click();
    await page.getByLabel('Username', { exact: true }).fill(MAILBOX);
    await page.getByText(/already connected through the outgoing mail server "Inbox SMTP"/).waitFor();
    await page.getByRole('button', { name: 'Reuse this connection' }).waitFor();
    await page.getByRole('link', { name: 'Incoming Mail Servers', exact: true }).first().click();
    await page.getByRole('link', { name: 'Inbox', exact: true }).click();
    await page.getByText('Token Valid', { exact: true }).first().waitFor();
    await page.getByText(/Uses the connection of/).first().waitFor();
    await page.getByRole('button', { name: 'Test & Confirm' }).click();
    await page.getByText(/Connection Test Successful! \d+ messages? in INBOX/).waitFor();
    await page.getByRole('button', { name: 'Fetch Now' }).click();
    // IDLE may have imported it already: then this fetch finds nothing new.
    await page.getByText(/^Fetched [01] new messages?$/).waitFor();

    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByRole('link', { name: 'Incoming Messages', exact: true }).click();
    const row = page.getByRole('row').filter({ hasText: 'Seen in the browser' });
    await row.waitFor();
    await row.getByText('Delivered').waitFor({ timeout: 20_000 });

    // The webhook's delivery log shows the delivery; Redeliver sends it again.
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByRole('link', { name: 'Webhooks', exact: true }).click();
    await page.getByRole('link', { name: 'Delivery log' }).first().click();
    await page.getByRole('heading', { name: 'Delivery log' }).waitFor();
    const delivery = page.getByRole('row').filter({ hasText: 'Seen in the browser' });
    await delivery.waitFor();
    const before = received.filter((r) => r.messageId === m.messageId).length;
    await delivery.getByRole('button', { name: 'Redeliver' }).click();
    await waitFor('the redelivery', async () => (received.filter((r) => r.messageId === m.messageId).length > before ? true : undefined), 15_000);
  });
});

test('a restart in the middle of a fetch imports nothing twice', T, async () => {
  const before = (await allInbound()).length;
  // Ten batches of 100 (each committed on its own), so the crash lands between commits.
  const batch = Array.from({ length: 1000 }, (_, i) => rawMessage(`Batch ${i}`, [], `Line ${i}\r\n`.repeat(200)));
  await imap(async (c) => {
    for (const m of batch) await c.append('INBOX', m.raw);
  });
  await api('POST', `/api/v1/incoming-servers/${incomingId}/fetch`);
  const partial = await waitFor('part of the batch', async () => {
    const n = (await api('GET', `/api/v1/incoming-servers/${incomingId}`)).json.importedCount as number;
    return n > before ? n : undefined;
  }, 20_000, 5);
  await mailroom.crash();
  assert.ok(partial < before + batch.length, `the crash came in the middle (${partial - before} of ${batch.length} imported)`);
  mailroom = await startMailroomProcess(env, port, mailroom.dataDir);
  await fetchNow(before + batch.length);
  const all = await allInbound();
  assert.equal(all.length, before + batch.length);
  assert.equal(new Set(all.map((m) => m.messageId)).size, all.length, 'no Message-ID twice');
});

test('a UIDVALIDITY change re-syncs by Message-ID without duplicates', T, async () => {
  const before = (await allInbound()).length;
  // Dovecot keeps UIDs in dovecot-uidlist: removing it makes the mailbox start over with a new UIDVALIDITY.
  const maildir = join(peers.dovecot.dir, 'mail', MAILBOX, 'Maildir');
  const oldValidity = await imap(async (c) => String((await c.mailboxOpen('INBOX')).uidValidity));
  for (const f of readdirSync(maildir)) if (f.startsWith('dovecot-uidlist') || f.startsWith('dovecot-uidvalidity') || f === 'dovecot.index' || f.startsWith('dovecot.index.')) rmSync(join(maildir, f), { force: true });
  await new Promise((r) => setTimeout(r, 1100)); // UIDVALIDITY is a timestamp in seconds
  const fresh = rawMessage('After the rebuild');
  await peers.dovecot.deliver(MAILBOX, fresh.raw);
  const newValidity = await imap(async (c) => String((await c.mailboxOpen('INBOX')).uidValidity));
  assert.notEqual(newValidity, oldValidity, 'the mailbox has a new UIDVALIDITY');
  await fetchNow(before + 1);
  const all = await allInbound();
  assert.equal(all.length, before + 1);
  assert.ok(all.some((m) => m.messageId === fresh.messageId));
  assert.equal(new Set(all.map((m) => m.messageId)).size, all.length);
});

test('a large message is streamed on its own and imported with its attachment size', T, async () => {
  const before = (await allInbound()).length;
  const blob = Buffer.alloc(3 * 1024 * 1024, 7);
  const b64 = blob.toString('base64').replace(/.{76}/g, '$&\r\n');
  const big = rawMessage('Large attachment', ['Content-Type: multipart/mixed; boundary="big"'], '');
  const raw = big.raw.replace('Content-Type: text/plain; charset=utf-8\r\n\r\n\r\n', '') +
    ['--big', 'Content-Type: text/plain', '', 'See attached.', '--big', 'Content-Type: application/octet-stream; name="data.bin"', 'Content-Disposition: attachment; filename="data.bin"', 'Content-Transfer-Encoding: base64', '', b64, '--big--', ''].join('\r\n');
  await peers.dovecot.deliver(MAILBOX, raw);
  await peers.dovecot.deliver(MAILBOX, rawMessage('Small one after the large one').raw);
  await fetchNow(before + 2);
  const all = await allInbound();
  const m = all.find((x) => x.messageId === big.messageId);
  assert.deepEqual(m.attachments, [{ filename: 'data.bin', contentType: 'application/octet-stream', size: blob.length }]);
  assert.ok(m.size > blob.length);
  assert.ok(all.some((x) => x.subject === 'Small one after the large one'));
});

test('an expired access token is refreshed; a revoked grant shows Reconnect needed', T, async () => {
  const db = new SQLite(join(mailroom.dataDir, 'mailroom.sqlite'));
  db.prepare("update oauth_tokens set access_token_expires_at = '2000-01-01T00:00:00.000Z' where mail_server_id = ?").run(outgoingId);
  db.close();
  const before = (await allInbound()).length;
  await peers.dovecot.deliver(MAILBOX, rawMessage('After refresh').raw);
  await fetchNow(before + 1);

  await peers.authServer.revokeGrants(MAILBOX);
  await peers.dovecot.deliver(MAILBOX, rawMessage('After revocation').raw);
  await api('POST', `/api/v1/incoming-servers/${incomingId}/fetch`);
  const s = await waitFor('Reconnect needed', async () => {
    const x = (await api('GET', `/api/v1/incoming-servers/${incomingId}`)).json;
    return x.tokenStatus === 'reconnect_needed' && !x.fetch.running ? x : undefined;
  });
  assert.match(s.tokenStatusReason, /revoked/);
  assert.ok(s.fetch.error);
});
