import { z } from 'zod';
import { LIMIT_LABELS, MICROSOFT_LIMITS, type SendLimits } from './send-limits.ts';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i;
const HOST = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$|^\d{1,3}(\.\d{1,3}){3}$/i;
const EMAIL = /^[^\s@<>()",;:\\]+@[a-z0-9.-]+\.[a-z]{2,63}$/i;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

const trimmed = (max: number, message: string) => z.string({ error: message }).trim().min(1, { error: message }).max(max, { error: `At most ${max} characters` });
const optionalText = z.preprocess((v) => (typeof v === 'string' && v.trim() === '' ? null : v), z.string().trim().nullable());

/** Labels and messages speak the form's language: the admin sees them next to the field. */
export const mailServerFields = {
  name: trimmed(200, 'Enter a Mail Server Description, e.g. "Outlook — sales"'),
  authType: z.literal('outlook_oauth', { error: 'Authenticate Using must be Outlook OAuth Authentication' }),
  username: z
    .string({ error: 'Enter the mailbox address, e.g. sales@contoso.com' })
    .trim()
    .toLowerCase()
    .regex(EMAIL, { error: 'Enter the mailbox address, e.g. sales@contoso.com' }),
  clientId: z
    .string({ error: 'Paste the Application (client) ID from the app\'s Overview page in Azure' })
    .trim()
    .regex(GUID, { error: 'Paste the Application (client) ID from Azure: a GUID like 1b2c3d4e-0000-1111-2222-333344445555' }),
  clientSecret: z
    .string({ error: 'Paste the client secret Value from Azure > Certificates & secrets' })
    .trim()
    .min(1, { error: 'Paste the client secret Value from Azure > Certificates & secrets' })
    .max(1024, { error: 'The client secret is too long' })
    .refine((v) => !GUID.test(v), {
      error: 'This looks like the Secret ID. Paste the secret\'s Value instead (the column next to it in Azure > Certificates & secrets)',
    }),
  tenant: z
    .string()
    .trim()
    .refine((v) => ['common', 'organizations', 'consumers'].includes(v.toLowerCase()) || GUID.test(v) || DOMAIN.test(v), {
      error: 'Use common, organizations, consumers, a tenant ID (GUID) or a domain such as contoso.com',
    }),
  smtpHost: z.string().trim().toLowerCase().regex(HOST, { error: 'Enter a host name such as smtp.office365.com' }),
  smtpPort: z.coerce.number({ error: 'Enter a port number (587 for STARTTLS)' }).int({ error: 'Enter a whole port number' }).min(1, { error: 'Port must be 1–65535' }).max(65535, { error: 'Port must be 1–65535' }),
  smtpSecurity: z.enum(['starttls', 'tls'], { error: 'Connection Security must be STARTTLS or SSL/TLS' }),
  sendUsing: z.enum(['smtp', 'graph'], { error: 'Send Using must be smtp (SMTP with XOAUTH2) or graph (Microsoft Graph)' }),
  priority: z.coerce.number({ error: 'Priority must be a whole number' }).int({ error: 'Priority must be a whole number' }).min(0, { error: 'Priority must be 0 or more' }).max(10000, { error: 'Priority must be 10000 or less' }),
  fromFilter: optionalText.refine((v) => v === null || EMAIL.test(v) || DOMAIN.test(v), {
    error: 'Enter an address (billing@contoso.com) or a domain (contoso.com), or leave it empty',
  }).transform((v) => v?.toLowerCase() ?? null),
  clientSecretExpiresAt: optionalText.refine((v) => v === null || (DATE.test(v) && !Number.isNaN(Date.parse(v))), {
    error: 'Enter the date as YYYY-MM-DD',
  }),
};

/** A limit is a whole number of at least 1, or empty/null for "no limit". */
const limit = (key: keyof SendLimits, max: number) => {
  const label = LIMIT_LABELS[key];
  const whole = `${label} must be a whole number, or empty for no limit`;
  return z.preprocess(
    (v) => (v === '' || v === null ? null : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v),
    z
      .number({ error: whole })
      .int({ error: whole })
      .min(1, { error: `${label} must be at least 1, or empty for no limit` })
      .max(max, { error: `${label} must be ${max.toLocaleString('en-US')} or less` })
      .nullable()
      .optional(),
  );
};

export const limitFields = {
  maxConnections: limit('maxConnections', 100),
  messagesPerMinute: limit('messagesPerMinute', 100_000),
  recipientsPerDay: limit('recipientsPerDay', 100_000_000),
  recipientsPerMessage: limit('recipientsPerMessage', 100_000),
};

export const DEFAULTS = {
  authType: 'outlook_oauth' as const,
  tenant: 'common',
  smtpHost: 'smtp.office365.com',
  smtpPort: 587,
  smtpSecurity: 'starttls' as const,
  sendUsing: 'smtp' as const,
  priority: 10,
  // The default SMTP Server is Exchange Online's: its per-mailbox limits come with it.
  ...MICROSOFT_LIMITS,
};

export const createMailServerSchema = z.strictObject({
  name: mailServerFields.name,
  authType: mailServerFields.authType.default(DEFAULTS.authType),
  username: mailServerFields.username,
  clientId: mailServerFields.clientId,
  clientSecret: mailServerFields.clientSecret,
  tenant: mailServerFields.tenant.default(DEFAULTS.tenant),
  smtpHost: mailServerFields.smtpHost.default(DEFAULTS.smtpHost),
  smtpPort: mailServerFields.smtpPort.default(DEFAULTS.smtpPort),
  smtpSecurity: mailServerFields.smtpSecurity.default(DEFAULTS.smtpSecurity),
  sendUsing: mailServerFields.sendUsing.default('smtp'),
  priority: mailServerFields.priority.default(DEFAULTS.priority),
  fromFilter: mailServerFields.fromFilter.default(null),
  clientSecretExpiresAt: mailServerFields.clientSecretExpiresAt.default(null),
  active: z.boolean().default(true),
  allowAccountMismatch: z.boolean().default(false),
  // Omitted: the SMTP Server's defaults (Microsoft's for Microsoft's hosts); null: no limit.
  ...limitFields,
});

export const updateMailServerSchema = z.strictObject({
  name: mailServerFields.name.optional(),
  authType: mailServerFields.authType.optional(),
  username: mailServerFields.username.optional(),
  clientId: mailServerFields.clientId.optional(),
  // An empty secret on Save means "keep the current one".
  clientSecret: z.preprocess((v) => (v === '' || v === null ? undefined : v), mailServerFields.clientSecret.optional()),
  tenant: mailServerFields.tenant.optional(),
  smtpHost: mailServerFields.smtpHost.optional(),
  smtpPort: mailServerFields.smtpPort.optional(),
  smtpSecurity: mailServerFields.smtpSecurity.optional(),
  sendUsing: mailServerFields.sendUsing.optional(),
  priority: mailServerFields.priority.optional(),
  fromFilter: mailServerFields.fromFilter.optional(),
  clientSecretExpiresAt: mailServerFields.clientSecretExpiresAt.optional(),
  active: z.boolean().optional(),
  allowAccountMismatch: z.boolean().optional(),
  ...limitFields,
});

export type CreateMailServerInput = z.infer<typeof createMailServerSchema>;
export type UpdateMailServerInput = z.infer<typeof updateMailServerSchema>;
