import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { type FetchedMessage, inboundRows } from '../../src/inbound/inbound-rows.ts';
import { parseMessage, storeRaw } from '../../src/inbound/parse-message.ts';
import { deleteSuppression, findSuppressions, listReports, recipientOutcomes, setServerReportSettings } from '../../src/storage/bounce-store.ts';
import { openDatabase, type OpenedDatabase } from '../../src/storage/database.ts';
import { importInboundMessages, listInbound } from '../../src/storage/inbound-store.ts';
import { findMailServer, insertMailServer, type MailServerRecord } from '../../src/storage/mail-server-store.ts';
import { findOutboxMessage, insertOutboxMessages } from '../../src/storage/outbox-store.ts';
import { insertWebhook } from '../../src/storage/webhook-store.ts';
import { dsn } from '../helpers/dsn.ts';
import { createTestDatabase, type TestPostgres } from '../helpers/postgres-db.ts';

// Reports fetched from a mailbox, matched to the outgoing message they are about, on both databases:
// each way of matching, the bounced address compared case-insensitively, a report that matches
// nothing still listed, exactly one event per report however often and wherever it is fetched,
// and the suppression rules (hard at once, soft after 5 in 13 weeks, lifted and counted afresh).
const dirs: string[] = [];
const pgs: TestPostgres[] = [];
after(async () => {
  for (const p of pgs) await p.drop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const base = { authType: 'outlook_oauth', clientId: 'c', clientSecretSealed: 'v1:x', clientSecretExpiresAt: null, tenant: 'common', smtpHost: 'h', smtpPort: 587, smtpSecurity: 'starttls', priority: 10, fromFilter: null, active: true, lastError: null };

async function incoming(db: OpenedDatabase['db'], id: string): Promise<MailServerRecord> {
  await insertMailServer(db, id, { ...base, name: id, username: 'erp@contoso.example' } as Parameters<typeof insertMailServer>[2], new Date());
  return { ...(await findMailServer(db, id))!, imap: { afterFetch: 'leave' } } as MailServerRecord;
}

let uid = 0;
/** Fetches raw messages into one server's INBOX the way both fetchers do: inboundRows, then one import transaction. */
async function fetchInto(db: OpenedDatabase['db'], server: MailServerRecord, raws: string[]) {
  const got: FetchedMessage[] = [];
  for (const r of raws) {
    const mime = Buffer.from(r);
    got.push({ uid: ++uid, id: randomUUID(), parsed: await parseMessage(mime), raw: { mime } });
  }
  const rows = await inboundRows(db, server, 'INBOX', '1', got);
  return importInboundMessages(db, { serverId: server.id, folder: 'INBOX', uidValidity: '1', lastUid: uid }, rows, ['hook'], randomUUID, new Date());
}

async function events(db: OpenedDatabase['db']) {
  return db.selectFrom('webhook_deliveries').select(['event', 'report_id', 'inbound_message_id']).execute();
}

/** A fresh database of `dialect` (its data directory and PostgreSQL database dropped after the file). */
async function freshDatabase(dialect: 'sqlite' | 'postgres', name: string): Promise<{ opened: OpenedDatabase; dataDir: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), `${name}-`));
  dirs.push(dataDir);
  let url = `sqlite:${join(dataDir, 'mailroom.sqlite')}`;
  if (dialect === 'postgres') {
    const p = await createTestDatabase(name.replace(/-/g, '_'));
    pgs.push(p);
    url = p.url;
  }
  return { opened: await openDatabase(url), dataDir };
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  test(`reports are matched to their outgoing message, raise one event each, and suppress per the rules on ${dialect}`, async () => {
    const { opened, dataDir } = await freshDatabase(dialect, 'mailroom-bounce');
    const { db } = opened;
    try {
      await insertMailServer(db, 'out', { ...base, name: 'Out', username: 'erp@contoso.example' } as Parameters<typeof insertMailServer>[2], new Date());
      const inbox = await incoming(db, 'in');
      const second = await incoming(db, 'in2');
      await insertWebhook(db, { id: 'hook', url: 'https://erp.example/hook', description: null, secretSealed: 'x', active: true }, new Date());
      const ids = { byOriginal: randomUUID(), byMicrosoft: randomUUID(), byReply: randomUUID(), byOwnId: randomUUID(), soft: randomUUID() };
      const mid = (k: string) => `<${k}-${Math.random().toString(36).slice(2)}@contoso.example>`;
      const mids = { byOriginal: mid('a'), byMicrosoft: mid('b'), byReply: mid('c'), byOwnId: mid('d'), soft: mid('e') };
      await insertOutboxMessages(
        db,
        Object.entries(ids).map(([k, id]) => ({
          id,
          from: 'erp@contoso.example',
          to: [k === 'soft' ? 'full@customer.example' : 'Alice <Alice@Customer.Example>'],
          cc: ['bob@customer.example'],
          bcc: [],
          replyTo: null,
          subject: `Invoice ${k}`,
          mailServerId: 'out',
          messageId: mids[k as keyof typeof mids],
          sizeBytes: 100,
          payload: { text: 'x', html: null, headers: {}, attachments: [], from: { name: '', address: 'erp@contoso.example' }, to: [], cc: [], bcc: [], replyTo: null },
          attachments: [],
          idempotencyKey: null,
          requestHash: null,
          apiKeyId: null,
          maxAttempts: 5,
        })),
        new Date(),
      );
      await db.updateTable('outbox_messages').set({ state: 'sent', sent_at: new Date().toISOString() }).execute();
      const to = 'erp@contoso.example';
      const reports = [
        // The attached original's Message-ID; the bounced address in other letter case.
        dsn({ to, recipient: 'ALICE@customer.example', original: { from: to, subject: 'Invoice byOriginal', messageId: mids.byOriginal } }),
        // Exchange Online: no original attached, X-Microsoft-Original-Message-ID on the NDR itself.
        dsn({ to, recipient: 'alice@customer.example', original: null, headers: [`X-Microsoft-Original-Message-ID: ${mids.byMicrosoft}`] }),
        // Only In-Reply-To / References name the original.
        dsn({ to, recipient: 'alice@customer.example', original: null, headers: [`In-Reply-To: ${mids.byReply}`, `References: ${mids.byReply}`] }),
        // A relay rewrote the Message-ID; Mailroom's own X-Mailroom-Id survives in the quoted headers.
        dsn({ to, recipient: 'alice@customer.example', original: { from: to, subject: 'Invoice byOwnId', messageId: '<rewritten@relay.example>', extra: [`X-Mailroom-Id: ${ids.byOwnId}`] } }),
        // About a message Mailroom never sent.
        dsn({ to, recipient: 'stranger@customer.example', original: { from: to, subject: 'Not ours', messageId: '<unknown@elsewhere.example>' } }),
        // Ordinary mail in the same fetch.
        ['From: Alice <alice@customer.example>', `To: ${to}`, 'Subject: Re: Invoice', `Message-ID: ${mid('reply')}`, `In-Reply-To: ${mids.byOriginal}`, '', 'Thanks, paid.', ''].join('\r\n'),
      ];
      assert.deepEqual(await fetchInto(db, inbox, reports), ['imported', 'imported', 'imported', 'imported', 'imported', 'imported']);

      for (const k of ['byOriginal', 'byMicrosoft', 'byReply', 'byOwnId'] as const) {
        assert.equal((await findOutboxMessage(db, ids[k]))!.outcome, 'bounced', `${k}: matched and marked bounced`);
        const outcomes = await recipientOutcomes(db, ids[k]);
        assert.deepEqual(outcomes.map((o) => [o.address, o.state, o.status, o.category]), [['alice@customer.example', 'bounced', '5.1.1', 'unknown_user']], k);
        assert.match(outcomes[0]!.diagnostic ?? '', /550 5\.1\.1/);
      }
      const unmatched = await listReports(db, { unmatched: true, limit: 10 });
      assert.deepEqual(unmatched.map((r) => r.report.recipients[0]!.address), ['stranger@customer.example'], 'a report that matches nothing is still recognised and listed');

      // Reports are events on the outgoing message, not new mail: only the reply is listed and offered as message.received.
      const listed = await listInbound(db, { order: 'asc', limit: 50 });
      assert.deepEqual(listed.map((m) => m.subject), ['Re: Invoice']);
      let ev = await events(db);
      assert.equal(ev.filter((e) => e.event === null).length, 1, 'message.received for the reply only');
      assert.equal(ev.filter((e) => e.event === 'message.bounced').length, 5, 'one message.bounced per report, matched or not');

      // The same reports fetched again (a restart mid-import: new UIDs, nothing committed twice) and
      // from a second mailbox (a shared copy), on PostgreSQL concurrently: no second event.
      await Promise.all([fetchInto(db, inbox, reports.slice(0, 5)), fetchInto(db, second, reports.slice(0, 5)), fetchInto(db, second, reports.slice(0, 5))]);
      ev = await events(db);
      assert.equal(ev.filter((e) => e.event === 'message.bounced').length, 5, 'still one event per report');
      assert.equal(Number((await db.selectFrom('delivery_reports').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n), 5);

      // A report about a message Mailroom never sent (or a forged one) suppresses nobody.
      assert.deepEqual(await findSuppressions(db, ['stranger@customer.example']), []);
      // Hard bounce (5.1.1, unknown user): suppressed at once.
      assert.deepEqual((await findSuppressions(db, ['ALICE@CUSTOMER.EXAMPLE'])).map((s) => [s.address, s.reason, s.status]), [['alice@customer.example', 'hard', '5.1.1']]);
      // Soft bounces (mailbox full): the fifth within 13 weeks suppresses, not the fourth.
      const full = (n: number) => dsn({ to, recipient: 'full@customer.example', status: '4.2.2', diagnostic: '452 4.2.2 Mailbox full', original: { from: to, subject: 'Invoice soft', messageId: mids.soft }, messageId: `<full-${n}@mx.remote.example>` });
      await fetchInto(db, inbox, [full(1), full(2), full(3), full(4)]);
      assert.deepEqual(await findSuppressions(db, ['full@customer.example']), [], 'four soft bounces: not yet');
      assert.equal((await findOutboxMessage(db, ids.soft))!.outcome, 'bounced');
      await fetchInto(db, inbox, [full(5)]);
      assert.deepEqual((await findSuppressions(db, ['full@customer.example'])).map((s) => [s.reason, s.bounces]), [['soft', 5]]);
      // Lifted: the count starts afresh.
      assert.ok(await deleteSuppression(db, 'Full@Customer.example', new Date()));
      await fetchInto(db, inbox, [full(6)]);
      assert.deepEqual(await findSuppressions(db, ['full@customer.example']), [], 'one bounce after lifting does not suppress again');

      // An incoming server that asks for everything also hands reports over as new mail.
      await setServerReportSettings(db, 'in2', { deliverReports: true });
      await fetchInto(db, { ...second }, [full(7)]);
      ev = await events(db);
      const seventh = (await db.selectFrom('inbound_messages').select(['id', 'report_only']).where('message_id', '=', '<full-7@mx.remote.example>').execute())[0]!;
      assert.equal(Number(seventh.report_only), 0);
      assert.equal(ev.filter((e) => e.inbound_message_id === seventh.id && e.event === null).length, 1, 'message.received too');
      assert.equal(ev.filter((e) => e.inbound_message_id === seventh.id && e.event === 'message.bounced').length, 1, 'and message.bounced');
    } finally {
      await opened.close();
    }
  });
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  test(`a non-delivery report that carries a 1.5 MB original, streamed to storage, is recognised from what was stored on ${dialect}`, async () => {
    const { opened, dataDir } = await freshDatabase(dialect, 'mailroom-bounce-large');
    const { db } = opened;
    try {
      await insertMailServer(db, 'out', { ...base, name: 'Out', username: 'erp@contoso.example' } as Parameters<typeof insertMailServer>[2], new Date());
      const inbox = await incoming(db, 'in');
      await insertWebhook(db, { id: 'hook', url: 'https://erp.example/hook', description: null, secretSealed: 'x', active: true }, new Date());
      const id = randomUUID();
      const messageId = `<invoice-${id}@contoso.example>`;
      await insertOutboxMessages(
        db,
        [{ id, from: 'erp@contoso.example', to: ['ap@customer.example'], cc: [], bcc: [], replyTo: null, subject: 'Invoice with PDF', mailServerId: 'out', messageId, sizeBytes: 100, payload: { text: 'x', html: null, headers: {}, attachments: [], from: { name: '', address: 'erp@contoso.example' }, to: [], cc: [], bcc: [], replyTo: null }, attachments: [], idempotencyKey: null, requestHash: null, apiKeyId: null, maxAttempts: 5 }],
        new Date(),
      );
      await db.updateTable('outbox_messages').set({ state: 'sent', sent_at: new Date().toISOString() }).execute();
      // As Exchange Online returns it: the report's parts, then the whole original with its attachment.
      const pdf = Buffer.alloc(1100 * 1024, 7).toString('base64').replace(/.{76}/g, '$&\r\n');
      const original = ['From: erp@contoso.example', 'To: ap@customer.example', 'Subject: Invoice with PDF', `Message-ID: ${messageId}`, 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="inv"', '', '--inv', 'Content-Type: text/plain', '', 'Please find the invoice attached.', '--inv', 'Content-Type: application/pdf; name="invoice.pdf"', 'Content-Transfer-Encoding: base64', '', pdf, '--inv--', ''].join('\r\n');
      const raw = [
        'From: Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.example>',
        'To: erp@contoso.example',
        'Subject: Undeliverable: Invoice with PDF',
        `Message-ID: <ndr-${id}@contoso.example>`,
        'X-MS-Exchange-Message-Is-Ndr:',
        'MIME-Version: 1.0',
        'Content-Type: multipart/report; report-type=delivery-status; boundary="ndr"',
        '',
        '--ndr',
        'Content-Type: text/plain',
        '',
        "Your message to ap@customer.example couldn't be delivered.",
        '--ndr',
        'Content-Type: message/delivery-status',
        '',
        'Reporting-MTA: dns;AM0PR01MB1234.eurprd01.prod.outlook.com',
        '',
        'Final-recipient: RFC822; ap@customer.example',
        'Action: failed',
        'Status: 5.1.1',
        'Diagnostic-Code: smtp;550 5.1.1 RESOLVER.ADR.RecipNotFound; not found',
        '',
        '--ndr',
        'Content-Type: message/rfc822',
        '',
        original,
        '--ndr--',
        '',
      ].join('\r\n');
      assert.ok(raw.length > 1024 * 1024, 'over the in-memory threshold: streamed to storage');
      const target = { db, dataDir, rawInDatabase: dialect === 'postgres', maxMessageBytes: 50 * 1024 * 1024 };
      const mid = randomUUID();
      const { raw: stored, ...parsed } = await storeRaw(Readable.from([Buffer.from(raw)]), target, 'in', mid);
      assert.ok(!('mime' in stored), 'kept in a file or in database rows, not in memory');
      const rows = await inboundRows(db, inbox, 'INBOX', '1', [{ uid: ++uid, id: mid, parsed, raw: stored }], target);
      assert.equal(rows[0]!.reportOnly, true, 'recognised as a report, not new mail');
      await importInboundMessages(db, { serverId: 'in', folder: 'INBOX', uidValidity: '1', lastUid: uid }, rows, ['hook'], randomUUID, new Date());
      assert.equal((await findOutboxMessage(db, id))!.outcome, 'bounced');
      assert.deepEqual((await recipientOutcomes(db, id)).map((o) => [o.address, o.state, o.status, o.category]), [['ap@customer.example', 'bounced', '5.1.1', 'unknown_user']]);
    } finally {
      await opened.close();
    }
  });
}
