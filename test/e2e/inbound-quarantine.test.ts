import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import { asAdminInBrowser } from '../helpers/browser.ts';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { storeTokens } from '../helpers/connect-directly.ts';
import { bigTextMessage, deepMessage, hugeHeaderMessage, manyPartsMessage, namedAttachmentMessage } from '../helpers/hostile-mime.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { assertResponsive, rssMb, watchRss } from '../helpers/process-health.ts';
import { getToken } from '../peers/get-token.ts';
import { type Peers, startPeers } from '../peers/index.ts';

// Mail that cannot be read whole, fetched over IMAP from Dovecot by a real Mailroom process: a
// message of 1,001 MIME parts (1.1 MB, streamed alone), 5,000 nested multiparts and a part header of
// 300 KB (both small, parsed in a batch) are imported as quarantined rows with the problem named,
// their raw bytes downloadable, and the good mail after them is imported in the same fetch. A 12 MB
// text is kept to 1 MB (truncated, the raw link streams all of it); a message over
// INBOUND_MAX_MESSAGE_MB is a row whose raw download says it was not kept and why.
const CLIENT_ID = '7c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5';
const CLIENT_SECRET = 'Qz9Q~quarantine.Test-Secret_Value~0123456789';
const MAILBOX = 'quarantine@example.test';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const T = { timeout: 180_000 };
const MAX_MB = 16;

let peers: Peers;
let mailroom: MailroomProcess;
let key: string;
let incomingId: string;
let receiver: Server;
const payloads: Array<{ bytes: number; message: any }> = [];

const api = apiClient(() => mailroom.baseUrl, () => key);

const good = (subject: string) =>
  [`From: Customer <customer@sender.example>`, `To: ${MAILBOX}`, `Subject: ${subject}`, `Message-ID: <${subject.replace(/\W/g, '-')}-${Date.now()}@sender.example>`, 'Date: Sat, 28 Nov 2026 09:00:00 +0000', 'Content-Type: text/plain', '', 'Hello.', ''].join('\r\n');

async function allInbound(): Promise<any[]> {
  return (await api('GET', '/api/v1/inbound-messages?limit=200')).json.items;
}

/** Fetch Now, until `total` messages are imported and the fetch has ended; the server's state then. */
async function fetchNow(total: number) {
  await waitFor('the previous fetch to end', async () => ((await api('GET', `/api/v1/incoming-servers/${incomingId}`)).json.fetch.running ? undefined : true));
  const r = await api('POST', `/api/v1/incoming-servers/${incomingId}/fetch`);
  assert.ok(r.status === 202 || r.status === 409, r.text);
  return waitFor(`${total} imported messages`, async () => {
    const s = (await api('GET', `/api/v1/incoming-servers/${incomingId}`)).json;
    return !s.fetch.running && s.importedCount >= total ? s : undefined;
  }, 90_000);
}

async function download(url: string): Promise<{ status: number; bytes: number; head: string; json?: any }> {
  const r = await fetch(url, { headers: { authorization: `Bearer ${key}` } });
  if (r.status !== 200) return { status: r.status, bytes: 0, head: '', json: await r.json() };
  let bytes = 0;
  let head = '';
  for await (const c of r.body as unknown as AsyncIterable<Uint8Array>) {
    if (head.length < 4096) head += Buffer.from(c).toString('latin1');
    bytes += c.length;
  }
  return { status: 200, bytes, head };
}

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      payloads.push({ bytes: body.length, message: JSON.parse(body.toString('utf8')).message });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  mailroom = await startMailroomProcess({
    MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost,
    NODE_EXTRA_CA_CERTS: peers.caFile,
    INBOUND_MAX_MESSAGE_MB: String(MAX_MB),
  });
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  const hook = await api('POST', '/api/v1/webhooks', { url: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook` });
  assert.equal(hook.status, 201, hook.text);
  const out = await api('POST', '/api/v1/mail-servers', { name: 'Quarantine SMTP', username: MAILBOX, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, smtpHost: '127.0.0.1', smtpPort: peers.dovecot.submissionPort });
  assert.equal(out.status, 201, out.text);
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: MAILBOX });
  storeTokens(mailroom.dataDir, out.json.id, MAILBOX, t, peers.authServer.tenantId);
  const inc = await api('POST', '/api/v1/incoming-servers', {
    name: 'Quarantine',
    imapHost: '127.0.0.1',
    imapPort: peers.dovecot.imapsPort,
    imapSecurity: 'tls',
    username: MAILBOX,
    folder: 'INBOX',
    afterFetch: 'leave',
    intervalMinutes: 1440,
    tokenSourceId: out.json.id,
  });
  assert.equal(inc.status, 201, inc.text);
  incomingId = inc.json.id;
});

after(async () => {
  await mailroom?.stop();
  await new Promise((r) => receiver?.close(r));
  await peers?.stop();
});

test('a 1,001-part, a 5,000-deep and a malformed message are quarantined with the problem named, raw kept, and the mail after them imported', T, async () => {
  const hostile = [
    { raw: manyPartsMessage(1001, '<q-many@hostile.example>'), id: '<q-many@hostile.example>', code: 'too_many_parts', says: /more than 1,000 MIME parts; Mailroom reads at most 1,000/ },
    { raw: deepMessage(5000, '<q-deep@hostile.example>'), id: '<q-deep@hostile.example>', code: 'too_deep', says: /nested more than 50 levels deep/ },
    { raw: hugeHeaderMessage('<q-header@hostile.example>'), id: '<q-header@hostile.example>', code: 'malformed', says: /header block larger than 256 KB/ },
  ];
  await peers.dovecot.deliver(MAILBOX, good('Before the hostile ones'));
  for (const h of hostile) await peers.dovecot.deliver(MAILBOX, h.raw);
  await peers.dovecot.deliver(MAILBOX, namedAttachmentMessage('..\\..\\evil.bat', '<q-named@hostile.example>'));
  await peers.dovecot.deliver(MAILBOX, good('After the hostile ones'));

  const baseline = rssMb(mailroom.pid);
  const rss = watchRss(mailroom.pid);
  const server = await fetchNow(6);
  const peak = rss.stop();
  assert.equal(server.fetch.error ?? null, null, 'the fetch itself did not fail');
  assert.ok(peak - baseline < 150, `RSS rose ${(peak - baseline).toFixed(0)} MB`);
  assert.ok((await assertResponsive(mailroom.baseUrl)) < 1000);

  const items = await allInbound();
  assert.ok(items.some((m) => m.subject === 'After the hostile ones' && m.problem === null), 'the next good message is imported');
  for (const h of hostile) {
    const row = items.find((m) => m.messageId === h.id);
    assert.ok(row, `${h.code} imported`);
    const detail = (await api('GET', `/api/v1/inbound-messages/${row.id}`)).json;
    assert.equal(detail.problem.code, h.code);
    assert.match(detail.problem.message, h.says);
    assert.equal(detail.from, 'Sender <sender@hostile.example>', 'the headers were read');
    assert.equal(typeof detail.rawUrl, 'string');
    const raw = await download(detail.rawUrl);
    assert.equal(raw.status, 200);
    assert.ok(raw.bytes >= h.raw.length && raw.head.includes(h.id), 'the raw message is kept');
  }
  const named = items.find((m) => m.messageId === '<q-named@hostile.example>');
  assert.equal(named.attachments[0].filename, 'evil.bat', 'a name safe to save under');
  assert.equal(named.attachments[0].originalFilename, '..\\..\\evil.bat', "the sender's name, as data");

  // The ERP is told too: the webhook carries the problem.
  const delivered = await waitFor('the webhook deliveries', async () => (hostile.every((h) => payloads.some((p) => p.message.messageId === h.id)) ? true : undefined));
  assert.ok(delivered);
  for (const h of hostile) assert.equal(payloads.find((p) => p.message.messageId === h.id)!.message.problem.code, h.code);

  // And the admin, in the list and on the message's page.
  await asAdminInBrowser(mailroom, { email: 'quarantine-admin@example.test', password: 'quarantine admin passphrase' }, async (page) => {
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByRole('link', { name: 'Incoming Messages', exact: true }).click();
    const row = page.getByRole('row').filter({ hasText: '1001 parts' });
    await row.getByText('Too many parts', { exact: true }).waitFor();
    await page.getByRole('row').filter({ hasText: '5000 levels' }).getByText('Nested too deep', { exact: true }).waitFor();
    await row.getByRole('link', { name: '1001 parts' }).click();
    await page.getByText(/This message could not be read whole: The message has more than 1,000 MIME parts; Mailroom reads at most 1,000\./).waitFor();
    await page.getByRole('link', { name: 'View raw' }).waitFor();
  });
});

test('a 12 MB text is stored to its first 1 MB with truncated and the raw link, which streams all of it', T, async () => {
  const before = (await allInbound()).length;
  const big = bigTextMessage(12 * 1024 * 1024, '<q-big@hostile.example>');
  await peers.dovecot.deliver(MAILBOX, big);
  await peers.dovecot.deliver(MAILBOX, good('After the big one'));
  const baseline = rssMb(mailroom.pid);
  const rss = watchRss(mailroom.pid);
  await fetchNow(before + 2);
  const peak = rss.stop();
  assert.ok(peak - baseline < 96, `RSS rose ${(peak - baseline).toFixed(0)} MB importing a 12 MB message`);
  const row = (await allInbound()).find((m) => m.messageId === '<q-big@hostile.example>');
  const detail = (await api('GET', `/api/v1/inbound-messages/${row.id}`)).json;
  assert.equal(detail.problem, null);
  assert.equal(detail.truncated, true);
  assert.equal(detail.textTruncated, true);
  assert.equal(detail.text.length, 1024 * 1024);
  const raw = await download(detail.rawUrl);
  assert.equal(raw.status, 200);
  assert.ok(raw.bytes >= big.length);
  const hook = await waitFor('the webhook of the big one', async () => payloads.find((p) => p.message.messageId === '<q-big@hostile.example>'));
  assert.ok(hook.bytes <= 1024 * 1024, `webhook body ${hook.bytes} bytes`);
  assert.equal(hook.message.truncated, true);
  assert.equal(hook.message.rawUrl, detail.rawUrl);
  assert.ok((await assertResponsive(mailroom.baseUrl)) < 1000);
});

test('a message over INBOUND_MAX_MESSAGE_MB is a row without raw: the raw download says it was not kept and why', T, async () => {
  const before = (await allInbound()).length;
  await peers.dovecot.deliver(MAILBOX, bigTextMessage((MAX_MB + 2) * 1024 * 1024, '<q-huge@hostile.example>'));
  await peers.dovecot.deliver(MAILBOX, good('After the huge one'));
  await fetchNow(before + 2);
  const items = await allInbound();
  assert.ok(items.some((m) => m.subject === 'After the huge one'));
  const row = items.find((m) => m.messageId === '<q-huge@hostile.example>' || (m.problem?.code === 'too_large' && m.size > MAX_MB * 1024 * 1024));
  assert.ok(row, 'the refused message is recorded');
  assert.equal(row.problem.code, 'too_large');
  assert.equal(row.rawUrl, null);
  const raw = await api('GET', `/api/v1/inbound-messages/${row.id}/raw`);
  assert.equal(raw.status, 404);
  assert.match(raw.json.error.message, /was not kept/);
  assert.match(raw.json.error.message, /INBOUND_MAX_MESSAGE_MB/);
  assert.match(raw.json.error.fix, /INBOUND_MAX_MESSAGE_MB/);
  assert.ok((await assertResponsive(mailroom.baseUrl)) < 1000);
});
