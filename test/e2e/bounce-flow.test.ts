import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import { asAdminInBrowser } from '../helpers/browser.ts';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { storeTokens } from '../helpers/connect-directly.ts';
import { assertResponsive } from '../helpers/process-health.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { getToken } from '../peers/get-token.ts';
import { type Peers, startPeers } from '../peers/index.ts';

// After the 250, with real peers: Mailroom sends through Dovecot's submission to the SMTP sink, which
// accepts the recipient and then, as a remote MTA does, mails an RFC 3464 DSN back into the sender's
// Dovecot mailbox. The next fetch of that mailbox turns it into an outcome on the outgoing message,
// one signed message.bounced webhook, and a suppression the next send follows.
const CLIENT_ID = '3c4d5e6f-7081-4b2c-9d3e-4f5a6b7c8d9e';
const CLIENT_SECRET = 'Bq9R~bounce.Test-Secret_Value~0123456789';
const MAILBOX = 'billing@example.test';
const GONE = 'gone@customer.example';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const REFUSAL = '550 5.1.1 <gone@customer.example>: Recipient address rejected: User unknown in virtual mailbox table';
const T = { timeout: 120_000 };

let peers: Peers;
let mailroom: MailroomProcess;
let key: string;
let outgoingId: string;
let incomingId: string;
let receiver: Server;
let hookSecret: string;
const received: Array<{ event: string; deliveryId: string; body: any; signatureOk: boolean }> = [];

const api = apiClient(() => mailroom.baseUrl, () => key);

async function connect(serverId: string) {
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: MAILBOX });
  storeTokens(mailroom.dataDir, serverId, MAILBOX, t, peers.authServer.tenantId);
}

async function fetchNow() {
  await waitFor('the previous fetch to end', async () => ((await api('GET', `/api/v1/incoming-servers/${incomingId}`)).json.fetch?.running ? undefined : true));
  const r = await api('POST', `/api/v1/incoming-servers/${incomingId}/fetch`);
  assert.ok(r.status === 202 || r.status === 409, r.text);
  await waitFor('the fetch to end', async () => ((await api('GET', `/api/v1/incoming-servers/${incomingId}`)).json.fetch?.running ? undefined : true));
}

async function send(to: string[], subject: string) {
  return api('POST', '/api/v1/messages', { from: MAILBOX, to, subject, text: 'Your invoice is attached.' });
}

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(req.headers['x-mailroom-signature'] ?? '')) ?? [];
      const signatureOk = !!t && v1 === createHmac('sha256', hookSecret).update(`${t}.${body}`).digest('hex');
      const payload = JSON.parse(body);
      received.push({ event: String(req.headers['x-mailroom-event']), deliveryId: payload.id, body: payload, signatureOk });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  mailroom = await startMailroomProcess({ MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost, NODE_EXTRA_CA_CERTS: peers.caFile, WEBHOOK_RETRY_BASE_SECONDS: '0.2' });
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  const hook = await api('POST', '/api/v1/webhooks', { url: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/mailroom`, description: 'ERP' });
  assert.equal(hook.status, 201, hook.text);
  hookSecret = hook.json.secret;
  const out = await api('POST', '/api/v1/mail-servers', { name: 'Billing SMTP', username: MAILBOX, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, smtpHost: '127.0.0.1', smtpPort: peers.dovecot.submissionPort });
  assert.equal(out.status, 201, out.text);
  outgoingId = out.json.id;
  await connect(outgoingId);
  // Watch this mailbox for bounces and replies: an incoming server on the sending mailbox, through the outgoing server's own connection.
  const inc = await api('POST', `/api/v1/mail-servers/${outgoingId}/watch`, { imapHost: '127.0.0.1', imapPort: peers.dovecot.imapsPort, intervalMinutes: 1440 });
  assert.equal(inc.status, 201, inc.text);
  assert.equal(inc.json.tokenSourceId, outgoingId);
  assert.equal(inc.json.tokenStatus, 'valid');
  assert.equal((await api('POST', `/api/v1/mail-servers/${outgoingId}/watch`, {})).json.id, inc.json.id, 'asked again: the same incoming server');
  incomingId = inc.json.id;
});

after(async () => {
  if (process.env.E2E_DEBUG) (await import('node:fs')).writeFileSync('/tmp/mailroom-bounce.log', mailroom?.output() ?? '');
  await mailroom?.stop();
  await new Promise((r) => receiver?.close(r));
  await peers?.stop();
});

test('a recipient refused after the 250 shows Bounced after the next fetch, the ERP is told once, and the next send follows the suppression setting', T, async () => {
  peers.sink.refuseAfterAccept(GONE, REFUSAL);
  const sent = await send(['Gone <Gone@Customer.example>', 'ok@customer.example'], 'Invoice 2026-41');
  assert.equal(sent.status, 202, sent.text);
  const id = sent.json.id;
  await waitFor('the invoice to be sent', async () => ((await api('GET', `/api/v1/messages/${id}`)).json.state === 'sent' ? true : undefined));
  await waitFor('the DSN in the sender\'s mailbox', async () => (peers.sink.bounced.length ? true : undefined));
  assert.match(peers.sink.messages[0]!.raw.toString('latin1'), new RegExp(`^X-Mailroom-Id: ${id}`, 'im'), 'the outbox id travels with the message');

  await fetchNow();
  const m = (await api('GET', `/api/v1/messages/${id}`)).json;
  assert.equal(m.state, 'sent');
  assert.equal(m.outcome, 'bounced');
  const byAddress = Object.fromEntries(m.recipients.map((r: any) => [r.address, r]));
  assert.equal(byAddress[GONE].state, 'bounced');
  assert.equal(byAddress[GONE].status, '5.1.1');
  assert.equal(byAddress[GONE].category, 'unknown_user');
  assert.match(byAddress[GONE].diagnostic, /User unknown/);
  assert.ok(byAddress[GONE].reportedAt);
  assert.equal(byAddress['ok@customer.example'].state, 'sent');
  assert.equal(m.reports.length, 1);
  assert.ok(m.reports[0].rawUrl, 'the raw report is kept as evidence');
  assert.equal((await fetch(m.reports[0].rawUrl.startsWith('http') ? m.reports[0].rawUrl : `${mailroom.baseUrl}${m.reports[0].rawUrl}`, { headers: { authorization: `Bearer ${key}` } })).status, 200);

  const bounced = await waitFor('the message.bounced webhook', async () => received.find((r) => r.event === 'message.bounced'));
  assert.ok(bounced.signatureOk);
  assert.equal(bounced.body.event, 'message.bounced');
  assert.equal(bounced.body.message.id, id);
  assert.equal(bounced.body.message.messageId, sent.json.messageId);
  assert.equal(bounced.body.report.recipients[0].address, GONE);
  assert.equal(bounced.body.report.recipients[0].category, 'unknown_user');
  // The DSN is an event on the invoice, not new mail for the ERP.
  assert.deepEqual((await api('GET', '/api/v1/inbound-messages')).json.items, []);
  assert.equal(received.filter((r) => r.event === 'message.received').length, 0);

  // Fetched again: nothing new, no second event.
  await fetchNow();
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(received.filter((r) => r.event === 'message.bounced').length, 1);

  // Suppressed (hard bounce); the default setting sends with a warning.
  const list = (await api('GET', '/api/v1/suppressions')).json.items;
  assert.deepEqual(list.map((s: any) => [s.address, s.reason, s.outboxMessageId]), [[GONE, 'hard', id]]);
  const warned = await send([GONE], 'Invoice 2026-42');
  assert.equal(warned.status, 202);
  assert.equal(warned.json.warnings[0].address, GONE);
  assert.match(warned.json.warnings[0].message, /gone@customer\.example is suppressed: it bounced \(5\.1\.1/);

  // Refuse: 422 naming the address and the bounce.
  assert.equal((await api('PATCH', `/api/v1/mail-servers/${outgoingId}/report-settings`, { suppressionPolicy: 'refuse' })).status, 200);
  const refused = await send(['someone@customer.example', GONE.toUpperCase()], 'Invoice 2026-43');
  assert.equal(refused.status, 422);
  assert.match(refused.json.error.message, /gone@customer\.example is suppressed: it bounced \(5\.1\.1, smtp; 550 5\.1\.1/);
  assert.match(refused.json.error.fix, /DELETE \/api\/v1\/suppressions/);

  // Lifted (audited): mail goes out again.
  assert.equal((await api('DELETE', `/api/v1/suppressions/${encodeURIComponent(GONE)}`)).status, 204);
  const audit = (await api('GET', '/api/v1/audit-events')).json.items;
  assert.ok(audit.some((e: any) => e.action === 'suppression.lifted' && e.targetId === GONE), JSON.stringify(audit.slice(0, 3)));
  const again = await send([GONE], 'Invoice 2026-44');
  assert.equal(again.status, 202, again.text);
  assert.equal(again.json.warnings, undefined);
  await assertResponsive(mailroom.baseUrl);
});

test('a restart in the middle of an import raises one event per report', T, async () => {
  peers.sink.refuseAfterAccept('moved@customer.example', '550 5.1.1 <moved@customer.example>: Recipient address rejected: User unknown');
  const sent = await send(['moved@customer.example'], 'Invoice 2026-45');
  assert.equal(sent.status, 202, sent.text);
  await waitFor('the DSN', async () => (peers.sink.bounced.some((b) => b.recipient === 'moved@customer.example') ? true : undefined));
  void api('POST', `/api/v1/incoming-servers/${incomingId}/fetch`).catch(() => {});
  await new Promise((r) => setTimeout(r, 30));
  await mailroom.crash();
  mailroom = await startMailroomProcess(mailroom.env, Number(new URL(mailroom.baseUrl).port), mailroom.dataDir);
  await fetchNow();
  await waitFor('Bounced', async () => ((await api('GET', `/api/v1/messages/${sent.json.id}`)).json.outcome === 'bounced' ? true : undefined));
  await waitFor('the webhook', async () => received.find((r) => r.event === 'message.bounced' && r.body.message?.id === sent.json.id));
  await fetchNow();
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(received.filter((r) => r.event === 'message.bounced' && r.body.message?.id === sent.json.id).length, 1);
});

test('the admin sees Bounced in Emails, the report in plain words with its evidence, and lifts a suppression in Settings › Technical › Suppressions', T, async () => {
  peers.sink.refuseAfterAccept('left@customer.example', '550 5.1.1 <left@customer.example>: Recipient address rejected: User unknown');
  const sent = await send(['left@customer.example'], 'Invoice 2026-46');
  await waitFor('the DSN', async () => (peers.sink.bounced.some((b) => b.recipient === 'left@customer.example') ? true : undefined));
  await fetchNow();
  await waitFor('Bounced', async () => ((await api('GET', `/api/v1/messages/${sent.json.id}`)).json.outcome === 'bounced' ? true : undefined));
  await asAdminInBrowser(mailroom, { email: 'bounce-admin@example.test', password: 'bounce admin passphrase' }, async (page) => {
    await page.goto(`${mailroom.baseUrl}/settings/technical/emails`);
    const row = page.locator('tbody.message-group', { hasText: 'Invoice 2026-46' });
    await row.getByText('Bounced', { exact: true }).waitFor();
    await row.getByRole('link', { name: 'Invoice 2026-46' }).click();
    await page.getByRole('heading', { name: 'After sending' }).waitFor();
    await page.getByText('left@customer.example').first().waitFor();
    await page.getByText(/User unknown/).first().waitFor();
    await page.getByRole('link', { name: /Download the report as it came/ }).waitFor();

    await page.goto(`${mailroom.baseUrl}/settings/technical/mail-servers/${outgoingId}`);
    await page.getByRole('heading', { name: 'Bounces and replies' }).waitFor();
    await page.getByText(/Watched by the incoming server/).waitFor();

    await page.goto(`${mailroom.baseUrl}/settings`);
    await page.getByRole('link', { name: 'Suppressions' }).click();
    const s = page.locator('tr', { hasText: 'left@customer.example' });
    await s.waitFor();
    await s.getByRole('button', { name: 'Lift' }).click();
    await page.locator('tr', { hasText: 'left@customer.example' }).waitFor({ state: 'detached' });
  });
  assert.deepEqual((await api('GET', '/api/v1/suppressions?q=left')).json.items, []);
});
