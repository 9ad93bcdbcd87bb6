import { z } from 'zod';
import { passwordAad } from '../credentials/auth-method.ts';
import { MailroomError } from '../errors/errors.ts';
import { parseInput } from '../errors/parse-input.ts';
import type { IncomingServerService } from '../inbound/incoming-server-service.ts';
import type { Sealer } from '../secrets/sealer.ts';
import type { Db } from '../storage/database.ts';
import { findMailServer, listMailServers } from '../storage/mail-server-store.ts';

export const watchMailboxSchema = z.strictObject({
  // Username/Password servers only: the IMAP server of the mailbox (OAuth providers have their own).
  imapHost: z.string().trim().min(1).max(253).optional(),
  imapPort: z.coerce.number().int().min(1).max(65535).optional(),
  imapSecurity: z.enum(['tls', 'starttls']).optional(),
  intervalMinutes: z.coerce.number().int().min(1).max(1440).default(5),
});

/**
 * "Watch this mailbox for bounces and replies": reports come back to the mailbox that sent, so an
 * outgoing server gets an incoming server on the same mailbox. OAuth (Outlook, Gmail) and Graph
 * reuse the outgoing server's connection (tokenSourceId: one consent covers both); a password
 * server's password is copied, sealed for the new row. Mail in the mailbox is left as it is (no
 * mark-as-read, no move): people may read it too. Answers the existing incoming server when one
 * already reads this mailbox.
 */
export async function watchMailbox(deps: { db: Db; sealer: Sealer; incoming: IncomingServerService }, outgoingId: string, body: unknown): Promise<{ created: boolean; incomingServer: Awaited<ReturnType<IncomingServerService['get']>> }> {
  const input = parseInput(watchMailboxSchema, body ?? {});
  const src = await findMailServer(deps.db, outgoingId);
  if (!src || src.direction !== 'outgoing') throw new MailroomError('MR_NOT_FOUND', `Outgoing mail server ${outgoingId} does not exist.`);
  const existing = (await listMailServers(deps.db, 'incoming')).find((s) => s.username === src.username);
  if (existing) return { created: false, incomingServer: await deps.incoming.get(existing.id) };
  const common = { name: `${src.name} — bounces and replies`, username: src.username, folder: 'INBOX', afterFetch: 'leave', intervalMinutes: input.intervalMinutes };
  if (src.authType === 'none') {
    throw new MailroomError('MR_UNPROCESSABLE', `The mail server "${src.name}" signs in with no account, so there is no mailbox to read bounces from.`, {
      fix: 'Add an incoming mail server for the mailbox bounces go to (the envelope sender) in Settings > Technical > Incoming Mail Servers.',
    });
  }
  if (src.authType === 'password') {
    if (!src.passwordSealed) throw new MailroomError('MR_CREDENTIALS_MISSING', `The mail server "${src.name}" has no password saved.`, { fix: 'Enter its password first, then watch the mailbox.' });
    const imapHost = input.imapHost ?? (/^smtp\./i.test(src.smtpHost) ? src.smtpHost.replace(/^smtp\./i, 'imap.') : undefined);
    if (!imapHost) throw new MailroomError('MR_VALIDATION', 'Enter the IMAP server of this mailbox, e.g. imap.example.com', { field: 'imapHost', fields: { imapHost: 'Enter the IMAP Server, e.g. imap.example.com' } });
    const created = await deps.incoming.create({
      ...common,
      serverType: 'imap',
      authType: 'password',
      imapHost,
      imapPort: input.imapPort ?? 993,
      imapSecurity: input.imapSecurity ?? 'tls',
      password: deps.sealer.open(src.passwordSealed, passwordAad(src.id)),
    });
    return { created: true, incomingServer: created };
  }
  const created = await deps.incoming.create({
    ...common,
    serverType: src.transport === 'graph' ? 'graph' : 'imap',
    authType: src.authType,
    tokenSourceId: src.id,
    tenant: src.tenant,
    ...(input.imapHost && { imapHost: input.imapHost }),
    ...(input.imapPort && { imapPort: input.imapPort }),
    ...(input.imapSecurity && { imapSecurity: input.imapSecurity }),
  });
  return { created: true, incomingServer: created };
}
