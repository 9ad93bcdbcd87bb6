import { authMethodOf } from '../credentials/auth-methods.ts';
import type { MailServerRecord, TokenRecord } from '../storage/mail-server-store.ts';
import { secretExpiry, type SecretExpiry } from './secret-expiry.ts';

export interface ChecklistItem {
  key: 'credentials' | 'consent' | 'token' | 'login';
  label: string;
  state: 'done' | 'failed' | 'todo';
  /** Step of the provider's connection guide where this is set up or fixed; null without OAuth (no guide). */
  guideStep: number | null;
  detail: string | null;
}

/** Refusals by the mail server itself (OAuth failures show on the token step). */
const AUTH_ERROR = /^(SMTP_|IMAP_|NET_|GRAPH_)/;

/**
 * Pure: the live checklist of one server, from its record and its (or its source's) token. A mailbox
 * that signs in with a template's app registration (appSourceId: a personal mailbox) is given that
 * template as `registration` (null: it was deleted): its credentials are the template's, and run out
 * with them.
 */
export function checklist(s: MailServerRecord, t: TokenRecord | undefined, now: Date, registration?: MailServerRecord | null): { items: ChecklistItem[]; secret: SecretExpiry } {
  const template = s.appSourceId !== null ? registration : undefined;
  const r = template ?? s;
  const secret = secretExpiry(r.clientSecretExpiresAt, now);
  const method = authMethodOf(s);
  if (!method.provider) return { items: loginChecklist(s, method.mechanism === 'password'), secret };
  const byCertificate = r.clientCredential === 'certificate' && method.provider.certificates === true;
  const saved = r.clientId !== '' && (byCertificate ? r.certificate !== null : r.clientSecretSealed !== null);
  // Without the template at hand (undefined) its credentials are taken as saved, as before it was asked for.
  const hasCredentials = s.tokenSourceId !== null || (s.appSourceId !== null ? template === undefined || (template !== null && saved) : saved);
  // The credential in use is what can run out: the certificate's notAfter, or the secret's date.
  const expired = byCertificate ? r.certificate !== null && Date.parse(r.certificate.notAfter) <= now.getTime() : secret.state === 'expired';
  const of = template ? ` of "${template.name}", whose app registration this mailbox signs in with,` : '';
  // A sign-in or token request that failed since the last good connect fails the step that fixes it
  // (guide step 4 and before: the app's credentials; 5: consent), instead of leaving it ✓ or ○.
  const failedStep = oauthFailureStep(s, t);
  const oauthError = failedStep !== null ? s.lastError : null;
  const items: ChecklistItem[] = [
    {
      key: 'credentials',
      label: 'Credentials saved',
      state: !hasCredentials ? 'todo' : expired || (failedStep !== null && failedStep <= 4) ? 'failed' : 'done',
      guideStep: 4,
      detail: expired
        ? byCertificate
          ? `The certificate${of} (thumbprint ${r.certificate!.thumbprint}) expired on ${r.certificate!.notAfter.slice(0, 10)}.`
          : `The client secret${of} expired on ${r.clientSecretExpiresAt}.`
        : failedStep !== null && failedStep <= 4
          ? oauthError!.message
          : s.tokenSourceId
            ? 'Uses the connection of an outgoing server.'
            : template === null
              ? 'The mail server whose app registration this mailbox signed in with was deleted: enter its own Client ID and Client Secret, or connect the person again through a new connect link.'
              : template && !saved
                ? `"${template.name}", whose app registration this mailbox signs in with, has no ${byCertificate ? 'certificate' : 'client secret'} saved.`
                : template
                  ? `Signs in with the app registration of "${template.name}".`
                  : byCertificate && s.certificate
                    ? `Certificate ${s.certificate.thumbprint}, valid until ${s.certificate.notAfter.slice(0, 10)}.`
                    : byCertificate
                      ? 'Generate or import a certificate, then upload it in Azure.'
                      : null,
    },
    {
      key: 'consent',
      label: 'Consent given',
      state: failedStep !== null && failedStep >= 5 ? 'failed' : t?.connectedAt ? 'done' : 'todo',
      guideStep: 5,
      detail: failedStep !== null && failedStep >= 5 ? oauthError!.message : t?.account ? `Signed in as ${t.account}.` : null,
    },
    {
      key: 'token',
      label: 'Token valid',
      state: t?.status === 'valid' ? 'done' : t?.status === 'reconnect_needed' ? 'failed' : 'todo',
      guideStep: 5,
      detail: t?.status === 'reconnect_needed' ? t.statusReason : null,
    },
    loginItem(s, s.transport === 'graph' ? 'Microsoft Graph' : s.direction === 'incoming' ? 'IMAP login' : 'SMTP AUTH', 6),
  ];
  return { items, secret };
}

/**
 * The guide step of an OAuth failure (sign-in, code redemption, refresh) stored after the last good
 * connect; null when there is none. Refusals by the mail server and notices do not count.
 */
function oauthFailureStep(s: MailServerRecord, t: TokenRecord | undefined): number | null {
  const e = s.lastError;
  if (!e || e.severity === 'notice' || AUTH_ERROR.test(e.code) || e.code === 'ACCOUNT_MISMATCH') return null;
  if (t?.connectedAt && e.at <= t.connectedAt) return null;
  // A grant that died after a good connect is the token step's failure (Reconnect needed), not consent's.
  if (t?.status === 'reconnect_needed') return null;
  const step = e.evidence?.guideStep;
  return typeof step === 'number' ? step : 5;
}

/** Username/Password and None have nothing to consent to and no token: the password, then the server's word. */
function loginChecklist(s: MailServerRecord, password: boolean): ChecklistItem[] {
  if (!password) return [loginItem(s, 'SMTP connection', null)];
  return [
    {
      key: 'credentials',
      label: 'Password saved',
      state: s.passwordSealed !== null ? 'done' : 'todo',
      guideStep: null,
      detail: null,
    },
    loginItem(s, s.direction === 'incoming' ? 'IMAP login' : 'SMTP AUTH', null),
  ];
}

function loginItem(s: MailServerRecord, protocol: string, guideStep: number | null): ChecklistItem {
  const authError = s.lastError && AUTH_ERROR.test(s.lastError.code) ? s.lastError : null;
  const loginFailedLater = authError && (!s.loginOkAt || authError.at > s.loginOkAt);
  return {
    key: 'login',
    label: `${protocol} accepted`,
    state: loginFailedLater ? 'failed' : s.loginOkAt ? 'done' : 'todo',
    guideStep,
    detail: loginFailedLater ? authError.message : s.loginOkAt ? `Last accepted ${s.loginOkAt}.` : s.direction === 'incoming' ? 'Run Test & Confirm.' : 'Run Test Connection.',
  };
}
