import type { Access, AuthMethodChoice, ClientCredential, SendLimitField } from './api.ts';

/**
 * What the server form shows for each Authenticate Using option and each transport, built on the
 * options the API lists (web/src/auth-methods.ts): the form renders these descriptions and names no
 * provider itself.
 */

export type Direction = 'outgoing' | 'incoming';
/** Send Using (outgoing) or Server Type (incoming). */
export type Transport = 'smtp' | 'imap' | 'graph';

export interface FieldText {
  label: string;
  help?: string;
  placeholder?: string;
}

export interface Choice<T extends string> {
  value: T;
  label: string;
}

/** The exact labels of the Outlook OAuth connection choices. */
export const CLIENT_CREDENTIAL_CHOICES: Choice<ClientCredential>[] = [
  { value: 'secret', label: 'Client secret' },
  { value: 'certificate', label: 'Certificate' },
];

export const ACCESS_CHOICES: Choice<Access>[] = [
  { value: 'delegated', label: 'Delegated — Connect your Outlook account' },
  { value: 'application', label: 'Application — no user sign-in' },
];

/** Tenants that name no organisation: application access refuses them. */
export const TENANTS_WITHOUT_ORGANISATION = ['common', 'organizations', 'consumers'];

export const APPLICATION_TENANT_HELP =
  'Application access acts for the organisation itself: enter its tenant ID or domain, e.g. contoso.com — common, organizations and consumers name no organisation.';

export const APPLICATION_SCOPE_NOTICE =
  'An application connection can reach every mailbox the tenant lets the app reach, not only Username. ' +
  'Scope it with RBAC for Applications in Exchange Online (New-ManagementScope and New-ManagementRoleAssignment) so that it reaches only the mailboxes it serves.';

/** What the form shows for one Authenticate Using option in one direction. */
export interface AuthDescription {
  method: AuthMethodChoice;
  credentials: 'oauth' | 'password' | 'none';
  username: FieldText;
  /** "Send as a shared mailbox": outgoing, for providers where another account may sign in. */
  sharedMailbox: FieldText | null;
  /** Client Secret Expiration: outgoing, for providers whose secrets expire. */
  secretExpiry: FieldText | null;
  /** Client Credential and Access are offered (Outlook OAuth). */
  connectionChoices: boolean;
  /** Said instead of credential fields (None). */
  note: string | null;
  /** Per sending limit: its help, with the provider's own limits where it has them. */
  limitHelp: Record<SendLimitField, string>;
  /** The in-app guide of the provider, if any. */
  guide: { id: string; label: string } | null;
  /** The connection panel shows token status, connect and disconnect (OAuth), or only tests. */
  panel: 'oauth' | 'plain';
}

const LIMIT_HELP: Record<SendLimitField, string> = {
  maxConnections: 'SMTP connections sending at once, Test Connection and Send test email included.',
  messagesPerMinute: 'Empty: no limit.',
  recipientsPerDay: 'In any 24 hours. When it is reached, mail is held until the window allows.',
  recipientsPerMessage: 'To, Cc and Bcc together; more is refused when the message is queued.',
};

function usernameText(m: AuthMethodChoice, direction: Direction): FieldText {
  const placeholder = direction === 'outgoing' ? 'sales@contoso.com' : 'support@contoso.com';
  if (m.mechanism === 'xoauth2' && m.oauth) {
    const help = direction === 'outgoing' ? m.oauth.help.username : `The ${m.oauth.accountName} mailbox to read, e.g. support@contoso.com.`;
    return { label: 'Username', help, placeholder };
  }
  if (m.mechanism === 'password') {
    return {
      label: 'Username',
      help: direction === 'outgoing' ? 'The login name the mail server expects, usually the address to send from.' : 'The login name the mail server expects, usually the mailbox address.',
      placeholder,
    };
  }
  return { label: 'Username', help: 'The address mail is sent from through this relay, e.g. erp@contoso.com.', placeholder: 'erp@contoso.com' };
}

/** The description of one Authenticate Using option for an outgoing or incoming server. */
export function describeAuth(m: AuthMethodChoice, direction: Direction): AuthDescription {
  const oauth = m.mechanism === 'xoauth2' ? m.oauth : null;
  const hints = oauth?.sendingLimitHints ?? {};
  const limitHelp = Object.fromEntries(
    (Object.keys(LIMIT_HELP) as SendLimitField[]).map((f) => [f, hints[f] ? `${LIMIT_HELP[f]} ${hints[f]}` : LIMIT_HELP[f]]),
  ) as Record<SendLimitField, string>;
  return {
    method: m,
    credentials: oauth ? 'oauth' : m.mechanism === 'password' ? 'password' : 'none',
    username: usernameText(m, direction),
    sharedMailbox:
      direction === 'outgoing' && oauth?.sharedMailbox
        ? { label: 'Send as a shared mailbox', help: 'Allow signing in with another account that has Send As rights on Username.' }
        : null,
    secretExpiry: direction === 'outgoing' && oauth?.secretExpiryHelp ? { label: 'Client Secret Expiration', help: oauth.secretExpiryHelp } : null,
    connectionChoices: !!oauth?.applicationAccess,
    note: m.mechanism === 'none' ? 'No credentials: the server must accept mail from this machine without authentication (a relay).' : null,
    limitHelp,
    guide: oauth ? { id: oauth.id, label: `How to connect ${oauth.accountName}` } : null,
    panel: oauth ? 'oauth' : 'plain',
  };
}

/** What the form says about one transport, for delegated or application access. */
export interface TransportDescription {
  value: Transport;
  label: string;
  /** Host, port and security fields are shown (SMTP and IMAP; Graph speaks HTTPS to its own host). */
  hostFields: boolean;
  /** The Azure permissions this transport needs. */
  permissions: Record<Access, string>;
  /** Said below the permissions. */
  note?: string;
}

export const TRANSPORTS: Record<Direction, TransportDescription[]> = {
  outgoing: [
    {
      value: 'smtp',
      label: 'SMTP (XOAUTH2)',
      hostFields: true,
      permissions: {
        delegated: 'Office 365 Exchange Online / Microsoft Graph delegated: SMTP.Send (and IMAP.AccessAsUser.All for incoming mail), plus offline_access, openid, profile, email',
        application: 'Office 365 Exchange Online application permission SMTP.SendAsApp, with admin consent; the app registered in Exchange (New-ServicePrincipal) and given Send As or FullAccess on the mailbox',
      },
    },
    {
      value: 'graph',
      label: 'Microsoft Graph',
      hostFields: false,
      permissions: {
        delegated: 'Microsoft Graph delegated: Mail.Send, Mail.ReadWrite (messages over 4 MB, incoming mail) and User.Read, plus offline_access, openid, profile, email',
        application: 'Microsoft Graph application permissions Mail.Send and Mail.ReadWrite, with admin consent, scoped with RBAC for Applications',
      },
      note: 'Graph sends over HTTPS: SMTP AUTH can stay switched off for the tenant.',
    },
  ],
  incoming: [
    {
      value: 'imap',
      label: 'IMAP',
      hostFields: true,
      permissions: {
        delegated: 'Office 365 Exchange Online delegated: IMAP.AccessAsUser.All, plus offline_access, openid, profile, email',
        application: 'Office 365 Exchange Online application permission IMAP.AccessAsApp, with admin consent; the app registered in Exchange (New-ServicePrincipal) and given FullAccess on the mailbox',
      },
    },
    {
      value: 'graph',
      label: 'Microsoft Graph',
      hostFields: false,
      permissions: {
        delegated: 'Microsoft Graph delegated Mail.ReadWrite and User.Read, plus offline_access, openid, profile, email',
        application: 'Microsoft Graph application permission Mail.ReadWrite, with admin consent, scoped with RBAC for Applications',
      },
      note: 'Microsoft Graph reads the folder over HTTPS (no IMAP needed). New mail is picked up at the interval below.',
    },
  ],
};

export function describeTransport(direction: Direction, value: string): TransportDescription {
  return TRANSPORTS[direction].find((t) => t.value === value) ?? TRANSPORTS[direction][0]!;
}

/** The connect button: application access checks the app's token instead of a person's sign-in. */
export function connectButtonLabel(m: AuthMethodChoice, access: Access | undefined): string | null {
  if (!m.oauth) return null;
  return access === 'application' && m.oauth.applicationAccess ? 'Check application access' : m.oauth.connectLabel;
}
