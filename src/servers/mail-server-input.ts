import { z } from 'zod';
import { authMethodOf } from '../credentials/auth-methods.ts';
import { hostRefusal, literalAddress, refusalText } from '../net/outbound-policy.ts';
import { outlookProvider } from '../oauth/outlook.ts';
import { AUTH_TYPES, type AuthType } from '../storage/mail-server-store.ts';
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
  /** Whose personal mailbox it is (the ERP's user id); null: shared. */
  owner: z.string({ error: 'The owner is your application\'s id for the user, as text (null: shared)' }).trim().min(1, { error: 'The owner is empty: use null for a shared mailbox' }).max(200, { error: 'The owner is at most 200 characters' }).nullable(),
  authType: z.enum(AUTH_TYPES as [AuthType, ...AuthType[]], {
    error: 'Authenticate Using must be outlook_oauth (Outlook OAuth Authentication), gmail_oauth (Gmail OAuth Authentication), password (Username/Password) or none (None)',
  }),
  username: z
    .string({ error: 'Enter the mailbox address, e.g. sales@contoso.com' })
    .trim()
    .toLowerCase()
    .regex(EMAIL, { error: 'Enter the mailbox address, e.g. sales@contoso.com' }),
  clientId: outlookProvider.fields.clientId,
  clientSecret: outlookProvider.fields.clientSecret,
  tenant: z
    .string()
    .trim()
    .refine((v) => ['common', 'organizations', 'consumers'].includes(v.toLowerCase()) || GUID.test(v) || DOMAIN.test(v), {
      error: 'Use common, organizations, consumers, a tenant ID (GUID) or a domain such as contoso.com',
    }),
  access: z.enum(['delegated', 'application'], { error: 'Access must be delegated (Connect your Outlook account) or application (no user sign-in)' }),
  tokenSourceId: z.preprocess((v) => (v === '' ? null : v), z.string({ error: 'Choose a mail server whose connection to reuse' }).max(100).nullable()),
  smtpHost: z.string().trim().toLowerCase().regex(HOST, { error: 'Enter a host name such as smtp.office365.com' }).superRefine((host, ctx) => {
    const issue = outboundHostIssue(host);
    if (issue) ctx.addIssue({ code: 'custom', message: issue });
  }),
  smtpPort: z.coerce.number({ error: 'Enter a port number (587 for STARTTLS)' }).int({ error: 'Enter a whole port number' }).min(1, { error: 'Port must be 1–65535' }).max(65535, { error: 'Port must be 1–65535' }),
  smtpSecurity: z.enum(['starttls', 'tls', 'none'], { error: 'Connection Security must be STARTTLS, SSL/TLS or None' }),
  clientCredential: z.enum(['secret', 'certificate'], { error: 'Client Credential must be secret (Client secret) or certificate (Certificate)' }),
  sendUsing: z.enum(['smtp', 'graph'], { error: 'Send Using must be smtp (SMTP with XOAUTH2) or graph (Microsoft Graph)' }),
  /** Checked against the provider's own shape once Authenticate Using is known (see credentialIssues). */
  anyClientId: z.string({ error: 'Paste the Client ID' }).trim().max(300, { error: 'At most 300 characters' }),
  anyClientSecret: z.string({ error: 'Paste the Client Secret' }).trim().max(1024, { error: 'The client secret is too long' }),
  password: z.string({ error: 'Enter the mailbox password' }).min(1, { error: 'Enter the mailbox password' }).max(1024, { error: 'The password is too long' }),
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

const emptyIsUnset = <T extends z.ZodType>(t: T) => z.preprocess((v) => (v === '' || v === null ? undefined : v), t.optional());

export const createMailServerSchema = z.strictObject({
  name: mailServerFields.name,
  authType: mailServerFields.authType.default(DEFAULTS.authType),
  username: mailServerFields.username,
  clientId: mailServerFields.anyClientId.default(''),
  clientSecret: emptyIsUnset(mailServerFields.anyClientSecret),
  clientCredential: mailServerFields.clientCredential.default('secret'),
  password: emptyIsUnset(mailServerFields.password),
  tenant: mailServerFields.tenant.default(DEFAULTS.tenant),
  // Omitted: the provider's own host (smtp.office365.com, smtp.gmail.com); Username/Password and None need one.
  smtpHost: mailServerFields.smtpHost.optional(),
  smtpPort: mailServerFields.smtpPort.optional(),
  smtpSecurity: mailServerFields.smtpSecurity.optional(),
  sendUsing: mailServerFields.sendUsing.default('smtp'),
  priority: mailServerFields.priority.default(DEFAULTS.priority),
  fromFilter: mailServerFields.fromFilter.default(null),
  clientSecretExpiresAt: mailServerFields.clientSecretExpiresAt.default(null),
  active: z.boolean().default(true),
  allowAccountMismatch: z.boolean().default(false),
  /** The ERP user whose personal mailbox this is; null: shared (anyone's messages by From). */
  owner: mailServerFields.owner.default(null),
  access: mailServerFields.access.default('delegated'),
  tokenSourceId: mailServerFields.tokenSourceId.default(null),
  // Omitted: the SMTP Server's defaults (Microsoft's for Microsoft's hosts); null: no limit.
  ...limitFields,
});

export const updateMailServerSchema = z.strictObject({
  name: mailServerFields.name.optional(),
  authType: mailServerFields.authType.optional(),
  username: mailServerFields.username.optional(),
  clientId: mailServerFields.anyClientId.optional(),
  // An empty secret or password on Save means "keep the current one".
  clientSecret: emptyIsUnset(mailServerFields.anyClientSecret),
  clientCredential: mailServerFields.clientCredential.optional(),
  password: emptyIsUnset(mailServerFields.password),
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
  owner: mailServerFields.owner.optional(),
  access: mailServerFields.access.optional(),
  tokenSourceId: mailServerFields.tokenSourceId.optional(),
  ...limitFields,
});

export type CreateMailServerInput = z.infer<typeof createMailServerSchema>;
export type UpdateMailServerInput = z.infer<typeof updateMailServerSchema>;

/**
 * The rules that depend on Authenticate Using, for the server as it will be saved: each OAuth
 * provider checks its own Client ID and Secret, a password server needs a password, Graph is
 * Microsoft's. `has*` say whether one is already stored. With Client Credential "certificate" no
 * secret is needed (the certificate is generated or imported after saving).
 */
export function credentialIssues(
  v: {
    authType: AuthType;
    clientId: string;
    clientSecret?: string | undefined;
    hasClientSecret: boolean;
    password?: string | undefined;
    hasPassword: boolean;
    transport?: string;
    direction: 'outgoing' | 'incoming';
    clientCredential?: 'secret' | 'certificate' | undefined;
  },
): Record<string, string> {
  const issues: Record<string, string> = {};
  const method = authMethodOf(v);
  if (v.direction === 'incoming' && !method.incoming) issues.authType = `${method.label} cannot log in to an IMAP mailbox: choose an OAuth method or Username/Password`;
  if (v.transport === 'graph' && !method.graph) issues[v.direction === 'incoming' ? 'receiveUsing' : 'sendUsing'] = 'Microsoft Graph works only with Outlook OAuth Authentication: choose SMTP, or Outlook OAuth Authentication';
  if (method.provider) {
    const id = method.provider.fields.clientId.safeParse(v.clientId);
    if (!id.success) issues.clientId = id.error.issues[0]?.message ?? 'Paste the Client ID';
    if (v.clientCredential === 'certificate' && !method.provider.certificates) {
      issues.clientCredential = `${method.label} takes a client secret only: choose Client secret`;
    }
    const needsSecret = v.clientCredential !== 'certificate' || !method.provider.certificates;
    if (v.clientSecret !== undefined) {
      const secret = method.provider.fields.clientSecret.safeParse(v.clientSecret);
      if (!secret.success) issues.clientSecret = secret.error.issues[0]?.message ?? 'Paste the Client Secret';
    } else if (!v.hasClientSecret && needsSecret) {
      const missing = method.provider.fields.clientSecret.safeParse('');
      issues.clientSecret = (!missing.success && missing.error.issues[0]?.message) || 'Paste the Client Secret';
    }
  }
  if (method.mechanism === 'password' && v.password === undefined && !v.hasPassword) issues.password = 'Enter the mailbox password';
  return issues;
}

/**
 * A mail host the outbound policy refuses by itself: a metadata or link-local address, a metadata
 * service's name, a private one with OUTBOUND_BLOCK_PRIVATE, or an address in a numeric form other
 * than the dotted quad (2130706433, 0x7f000001, 127.1), which only ever hides what it points at.
 * Names are checked again on what they resolve to, when connecting.
 */
export function outboundHostIssue(host: string): string | null {
  const literal = literalAddress(host);
  if (literal && literal !== host.replace(/^\[(.*)\]$/, '$1')) return `${host} is the address ${literal} written as a number: enter the mail server's host name (e.g. smtp.office365.com), or its address as ${literal}`;
  const r = hostRefusal(host);
  if (!r) return null;
  const exception = r.kind === 'loopback' || r.kind === 'private' ? ', or list it in OUTBOUND_ALLOW' : '';
  return `${refusalText(r)}. Enter the mail server's real host name (e.g. smtp.office365.com)${exception}`;
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|::1)$/i;

/** Passwords and mail cross the network in the clear without TLS: only to this machine or hosts the operator allowed. */
export function plaintextIssue(host: string, security: string, allowed: readonly string[], field: string): Record<string, string> {
  if (security !== 'none' || LOOPBACK.test(host) || allowed.includes(host.toLowerCase())) return {};
  return { [field]: `Connection Security None sends everything unencrypted and is allowed only for this machine (127.0.0.1, localhost) or hosts listed in MAIL_PLAINTEXT_HOSTS: choose STARTTLS or SSL/TLS for ${host}` };
}

export const APPLICATION_TENANT_ISSUE =
  'Application access acts for the organisation itself: enter its tenant ID or domain, e.g. contoso.com — common/organizations/consumers name no organisation';

/**
 * The rules of Access: application (client credentials) needs a provider that offers it and one named
 * tenant — Microsoft's token endpoint refuses client credentials on common/organizations/consumers.
 */
export function accessIssues(v: { access: 'delegated' | 'application'; authType: AuthType; tenant: string; usesSource: boolean }): Record<string, string> {
  if (v.access !== 'application') return {};
  const provider = authMethodOf(v).provider;
  if (!provider?.clientCredentials) return { access: 'Application access needs Outlook OAuth Authentication' };
  if (v.usesSource) return {};
  if (['common', 'organizations', 'consumers'].includes(v.tenant.trim().toLowerCase())) return { tenant: APPLICATION_TENANT_ISSUE };
  return {};
}

/**
 * Reusing another server's connection (tokenSourceId): an application connection serves any mailbox
 * (the token acts for the app, the mailbox is the Username) and any transport (a token per resource);
 * a delegated one only the mailbox that signed in, and only its own resource.
 */
export function sourceIssues(
  src: { id: string; name: string; username: string; direction: 'outgoing' | 'incoming'; transport: string; access: 'delegated' | 'application'; tokenSourceId: string | null; authType: AuthType } | undefined,
  self: { id?: string; username: string; graph: boolean; direction: 'outgoing' | 'incoming' },
): Record<string, string> {
  if (!src || src.id === self.id || src.tokenSourceId) return { tokenSourceId: 'No mail server with its own connection has this id' };
  if (src.access === 'application') return {};
  if (src.direction !== 'outgoing') return { tokenSourceId: 'Only an outgoing server\'s delegated connection can be reused' };
  if ((src.transport === 'graph') !== self.graph) return { tokenSourceId: `Reuse a connection that ${self.graph ? 'uses Microsoft Graph' : 'uses SMTP'}, or connect this server itself` };
  if (src.username !== self.username) return { tokenSourceId: `Only a connection for ${self.username} can be reused (an application connection serves any mailbox)` };
  return {};
}
