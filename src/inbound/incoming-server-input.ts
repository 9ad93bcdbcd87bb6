import { z } from 'zod';
import { mailServerFields } from '../servers/mail-server-input.ts';

const HOST = mailServerFields.smtpHost;

export const INCOMING_DEFAULTS = {
  serverType: 'imap' as const,
  authType: 'outlook_oauth' as const,
  imapHost: 'outlook.office365.com',
  imapPort: 993,
  imapSecurity: 'tls' as const,
  folder: 'INBOX',
  afterFetch: 'mark_read' as const,
  intervalMinutes: 5,
  tenant: 'common',
};

const folder = z
  .string({ error: 'Enter a folder name, e.g. INBOX' })
  .trim()
  .min(1, { error: 'Enter a folder name, e.g. INBOX' })
  .max(255)
  .refine((v) => !/[\r\n"\\]/.test(v), { error: 'The folder name has characters IMAP does not allow' });

const base = {
  name: mailServerFields.name,
  serverType: z.enum(['imap', 'graph'], { error: 'Server Type must be imap (IMAP with XOAUTH2) or graph (Microsoft Graph)' }),
  authType: mailServerFields.authType,
  imapHost: HOST,
  imapPort: mailServerFields.smtpPort,
  imapSecurity: z.enum(['tls', 'starttls'], { error: 'Choose SSL/TLS or STARTTLS' }),
  username: mailServerFields.username,
  folder,
  afterFetch: z.enum(['mark_read', 'move', 'leave'], { error: 'After fetching must be mark as read, move to a folder, or leave' }),
  moveToFolder: z.preprocess((v) => (typeof v === 'string' && v.trim() === '' ? null : v), folder.nullable()),
  intervalMinutes: z.coerce.number({ error: 'Interval must be a number of minutes' }).int({ error: 'Interval must be whole minutes' }).min(1, { error: 'Interval must be 1 to 1440 minutes' }).max(1440, { error: 'Interval must be 1 to 1440 minutes' }),
  active: z.boolean(),
  tokenSourceId: z.preprocess((v) => (v === '' ? null : v), z.string().nullable()),
  owner: mailServerFields.owner,
  access: mailServerFields.access,
  // Checked against the provider's shape, or the password required, by credentialIssues once Authenticate Using is known.
  clientId: z.preprocess((v) => (v === '' ? null : v), mailServerFields.anyClientId.nullable()),
  clientSecret: z.preprocess((v) => (v === '' || v === null ? undefined : v), mailServerFields.anyClientSecret.optional()),
  clientCredential: mailServerFields.clientCredential,
  password: z.preprocess((v) => (v === '' || v === null ? undefined : v), mailServerFields.password.optional()),
  tenant: z.preprocess((v) => (v === null || v === '' ? undefined : v), mailServerFields.tenant.optional()),
};

export const createIncomingSchema = z
  .strictObject({
    name: base.name,
    serverType: base.serverType.default('imap'),
    authType: base.authType.default('outlook_oauth'),
    // Omitted: the provider's own IMAP host (outlook.office365.com, imap.gmail.com).
    imapHost: base.imapHost.optional(),
    imapPort: base.imapPort.optional(),
    imapSecurity: base.imapSecurity.optional(),
    username: base.username,
    folder: base.folder.default('INBOX'),
    afterFetch: base.afterFetch.default('mark_read'),
    moveToFolder: base.moveToFolder.default(null),
    intervalMinutes: base.intervalMinutes.default(5),
    active: base.active.default(true),
    tokenSourceId: base.tokenSourceId.default(null),
    owner: base.owner.default(null),
    access: base.access.default('delegated'),
    clientId: base.clientId.default(null),
    clientSecret: base.clientSecret,
    clientCredential: base.clientCredential.default('secret'),
    password: base.password,
    tenant: base.tenant.transform((v) => v ?? 'common'),
  })
  .superRefine((v, ctx) => {
    if (v.afterFetch === 'move' && !v.moveToFolder) ctx.addIssue({ code: 'custom', path: ['moveToFolder'], message: 'Enter the folder to move fetched mail to' });
  });

export const updateIncomingSchema = z.strictObject(
  Object.fromEntries(Object.entries(base).map(([k, v]) => [k, (v as z.ZodType).optional()])) as { [K in keyof typeof base]: z.ZodOptional<(typeof base)[K]> },
);

export type CreateIncomingInput = z.infer<typeof createIncomingSchema>;
export type UpdateIncomingInput = z.infer<typeof updateIncomingSchema>;
