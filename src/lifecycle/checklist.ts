import type { MailServerRecord, TokenRecord } from '../storage/mail-server-store.ts';
import { secretExpiry, type SecretExpiry } from './secret-expiry.ts';

export interface ChecklistItem {
  key: 'credentials' | 'consent' | 'token' | 'login';
  label: string;
  state: 'done' | 'failed' | 'todo';
  /** Step of the connection guide where this is set up or fixed. */
  guideStep: number;
  detail: string | null;
}

/** Refusals by the mail server itself (OAuth failures show on the token step). */
const AUTH_ERROR = /^(SMTP_|IMAP_|NET_|GRAPH_)/;

/** Pure: the live checklist of one server, from its record and its (or its source's) token. */
export function checklist(s: MailServerRecord, t: TokenRecord | undefined, now: Date): { items: ChecklistItem[]; secret: SecretExpiry } {
  const secret = secretExpiry(s.clientSecretExpiresAt, now);
  const hasCredentials = s.tokenSourceId !== null || (s.clientId !== '' && s.clientSecretSealed !== null);
  const authError = s.lastError && AUTH_ERROR.test(s.lastError.code) ? s.lastError : null;
  const loginFailedLater = authError && (!s.loginOkAt || authError.at > s.loginOkAt);
  const protocol = s.transport === 'graph' ? 'Microsoft Graph' : s.direction === 'incoming' ? 'IMAP login' : 'SMTP AUTH';
  const items: ChecklistItem[] = [
    {
      key: 'credentials',
      label: 'Credentials saved',
      state: !hasCredentials ? 'todo' : secret.state === 'expired' ? 'failed' : 'done',
      guideStep: 4,
      detail: secret.state === 'expired' ? `The client secret expired on ${s.clientSecretExpiresAt}.` : s.tokenSourceId ? 'Uses the connection of an outgoing server.' : null,
    },
    {
      key: 'consent',
      label: 'Consent given',
      state: t?.connectedAt ? 'done' : 'todo',
      guideStep: 5,
      detail: t?.account ? `Signed in as ${t.account}.` : null,
    },
    {
      key: 'token',
      label: 'Token valid',
      state: t?.status === 'valid' ? 'done' : t?.status === 'reconnect_needed' ? 'failed' : 'todo',
      guideStep: 5,
      detail: t?.status === 'reconnect_needed' ? t.statusReason : null,
    },
    {
      key: 'login',
      label: `${protocol} accepted`,
      state: loginFailedLater ? 'failed' : s.loginOkAt ? 'done' : 'todo',
      guideStep: 6,
      detail: loginFailedLater ? authError.message : s.loginOkAt ? `Last accepted ${s.loginOkAt}.` : s.direction === 'incoming' ? 'Run Test & Confirm.' : 'Run Test Connection.',
    },
  ];
  return { items, secret };
}
