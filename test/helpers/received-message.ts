import { inboundRows } from '../../src/inbound/inbound-rows.ts';
import { parseMessage } from '../../src/inbound/parse-message.ts';
import type { Db } from '../../src/storage/database.ts';
import { importInboundMessages } from '../../src/storage/inbound-store.ts';
import { findMailServer, insertMailServer, type MailServerRecord } from '../../src/storage/mail-server-store.ts';

/**
 * Stores one received message ("Confidential payroll Q4 #uid") as a fetch would, with a pending
 * delivery to each webhook given, without a mail server to fetch it from. Answers its id.
 */
export async function importReceivedMessage(db: Db, uid: number, webhookIds: string[]): Promise<string> {
  if (!(await findMailServer(db, 'in'))) {
    const base = { name: 'In', authType: 'password', username: 'in@example.test', clientId: '', clientSecretSealed: null, clientSecretExpiresAt: null, tenant: 'common', smtpHost: 'h', smtpPort: 993, smtpSecurity: 'tls', priority: 10, fromFilter: null, active: true, lastError: null };
    await insertMailServer(db, 'in', base as unknown as Parameters<typeof insertMailServer>[2], new Date());
  }
  const server = { ...(await findMailServer(db, 'in'))!, imap: { afterFetch: 'leave' } } as MailServerRecord;
  const raw = Buffer.from(`From: payroll@example.test\r\nTo: in@example.test\r\nSubject: Confidential payroll Q4 #${uid}\r\nMessage-ID: <m${uid}@example.test>\r\n\r\nSalaries attached.\r\n`);
  const id = `msg-${uid}`;
  const rows = await inboundRows(db, server, 'INBOX', '1', [{ uid, id, parsed: await parseMessage(raw), raw: { mime: raw } }]);
  let n = 0;
  await importInboundMessages(db, { serverId: 'in', folder: 'INBOX', uidValidity: '1', lastUid: uid }, rows, webhookIds, () => `d-${uid}-${n++}`, new Date());
  return id;
}
