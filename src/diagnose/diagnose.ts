import { CATALOGUE, type CatalogueCode, type CatalogueEntry, type Diagnosis, SEND_AS_CODES, sendAsNamed } from './catalogue.ts';
import { formatBytes } from '../net/bounded-fetch.ts';
import { enhancedStatusOf, type Evidence, type GraphEvidence, type ImapEvidence, type NetworkEvidence, type OAuthEvidence, type SmtpEvidence } from './evidence.ts';

export { CATALOGUE } from './catalogue.ts';
export type { CatalogueArea, CatalogueCode, CatalogueEntry, Diagnosis, GuideStep } from './catalogue.ts';

const isCode = (code: string): code is CatalogueCode => Object.hasOwn(CATALOGUE, code);

function entry(code: CatalogueCode, cause?: string): Diagnosis {
  const e: CatalogueEntry = CATALOGUE[code];
  return { code, cause: cause ?? e.cause, fix: e.fix, guideStep: e.guideStep, temporary: e.temporary, ...(e.quota && { quota: true }) };
}

/** Graph's mail permissions: a request that asked for one of them asked for Microsoft Graph. */
const GRAPH_MAIL_PERMISSIONS = new Set(['Mail.Send', 'Mail.ReadWrite', 'Mail.Send.Shared', 'Mail.ReadWrite.Shared']);

/** A token answer refused by Mailroom's bounds, with the endpoint, the bound and the token named. */
function tokenLimit(e: OAuthEvidence): Diagnosis | undefined {
  const at = e.origin ? `The token endpoint at ${e.origin}` : 'The token endpoint';
  const bound = e.bound ?? 0;
  switch (e.error) {
    case 'token_endpoint_timeout':
      return entry('OAUTH_TOKEN_ENDPOINT_TIMEOUT', `${at} did not finish answering within ${Math.round(bound / 100) / 10} s, so no access token could be fetched.`);
    case 'token_response_too_large':
      return entry('OAUTH_TOKEN_RESPONSE_TOO_LARGE', `${at} answered with more than ${formatBytes(bound)}, where a token answer holds a few KB; Mailroom stopped reading it.`);
    case 'token_too_long':
      return entry('OAUTH_TOKEN_TOO_LONG', `${at} issued ${e.tokenName ? `an ${e.tokenName}` : 'a token'} of ${e.tokenLength?.toLocaleString('en-US') ?? `over ${bound.toLocaleString('en-US')}`} characters; Mailroom accepts at most ${bound.toLocaleString('en-US')} and neither stored nor used it.`);
    default:
      return undefined;
  }
}

function oauth(e: OAuthEvidence): Diagnosis {
  const limit = tokenLimit(e);
  if (limit) return limit;
  if (e.error === 'role_missing') return entry('OAUTH_APP_ROLE_MISSING');
  if (e.application) {
    // Application access: the same AADSTS codes have other causes and fixes without a user sign-in.
    if (e.errorCodes.includes(700016)) return entry('OAUTH_APP_AADSTS700016');
    if (e.errorCodes.includes(7000215)) return entry('OAUTH_APP_AADSTS7000215');
  }
  // Providers other than Microsoft name themselves; their entries are `${PROVIDER}_${error}`.
  if (e.provider) {
    const prefix = e.provider.toUpperCase();
    const code = `${prefix}_${e.error}`;
    if (isCode(code)) return entry(code);
    const unknown = `${prefix}_UNKNOWN`;
    if (isCode(unknown)) return entry(unknown, `The sign-in service answered with the error "${e.error}", which Mailroom does not know.`);
  }
  // Microsoft's `error_codes` (or the AADSTS numbers in the description) name the case; `error` is the fallback.
  for (const n of e.errorCodes) {
    if (n === 7000215 && e.secretLooksLikeGuid) return entry('AADSTS7000215_SECRET_ID');
    // 700027 is one code for "key not found" and "key expired": only the Reason in the text tells them apart.
    if (n === 700027 && /Reason - The key used is expired/i.test(e.errorDescription ?? '')) {
      return entry('OAUTH_CERTIFICATE_EXPIRED', e.certificateThumbprint ? `The certificate with thumbprint ${e.certificateThumbprint}, which this server signs its token requests with, has expired, so Microsoft no longer accepts it. Every mailbox using it stops sending and receiving until a valid one is in place.` : undefined);
    }
    if (n === 700027 && e.certificateThumbprint) {
      return entry('AADSTS700027', `Microsoft could not verify the client assertion Mailroom signed with the certificate whose thumbprint is ${e.certificateThumbprint}: Azure does not list that certificate for this app (never uploaded, deleted, or uploaded to another app registration). Upload exactly that one.`);
    }
    const graph = e.permissions ?? [];
    if (n === 65001 && graph.some((p) => GRAPH_MAIL_PERMISSIONS.has(p))) {
      return entry('AADSTS65001_GRAPH', `Nobody has consented to the Microsoft Graph permissions this server asks for (${graph.join(', ')}) for this account: the sign-in was given for SMTP and IMAP only, or the consent was withdrawn.`);
    }
    const code = `AADSTS${n}`;
    if (isCode(code)) return entry(code);
  }
  const code = `OAUTH_${e.error}`;
  if (isCode(code)) return entry(code);
  return entry('OAUTH_UNKNOWN', `Microsoft answered with the error "${e.error}", which Mailroom does not know.`);
}

/**
 * Exchange Online sends one enhanced status, 5.7.139, for four problems with four different fixes;
 * only the reply text tells them apart. This table, SendAsDenied and SubmissionQuotaExceeded below are
 * the only places Mailroom reads reply text, and only to choose between entries of the same status.
 */
const SMTP_5_7_139: Array<[RegExp, CatalogueCode]> = [
  [/disabled for the Tenant/i, 'SMTP_535_5.7.139_TENANT'],
  [/disabled for the Mailbox/i, 'SMTP_535_5.7.139_MAILBOX'],
  [/security defaults/i, 'SMTP_535_5.7.139_SECURITY_DEFAULTS'],
  [/did not meet the criteria/i, 'SMTP_535_5.7.139_CRITERIA'],
];

/** By reply code and enhanced status where the status alone is ambiguous (4.3.2, 4.7.0). */
const SMTP_BY_REPLY: Record<string, CatalogueCode> = {
  '432 4.3.2': 'SMTP_432_4.3.2',
  '421 4.7.0': 'SMTP_421_4.7.0',
  '451 4.7.0': 'SMTP_421_4.7.0',
};

const SMTP_BY_STATUS: Record<string, CatalogueCode> = {
  '5.7.3': 'SMTP_535_5.7.3',
  '5.7.30': 'SMTP_550_5.7.30',
  '5.7.57': 'SMTP_530_5.7.57',
  '5.7.60': 'SMTP_550_5.7.60',
  '5.7.233': 'SMTP_550_5.7.233',
  '5.2.2': 'SMTP_554_5.2.2',
  '4.7.500': 'SMTP_451_4.7.500',
  '4.7.66': 'SMTP_421_4.7.66',
};

/** Microsoft 365's SMTP hosts, where a password login meets the retirement of basic authentication. */
const MICROSOFT_SMTP = /(^|\.)(office365\.com|outlook\.com|office365\.us|partner\.outlook\.cn)$/i;

/** Gmail signs its replies with "gsmtp"; its 5.7.8 and 4.7.0 need Google's own fixes. */
const GMAIL_REPLY = /\bgsmtp\b|Username and Password not accepted/i;

function smtp(e: SmtpEvidence): Diagnosis {
  const text = e.response ?? '';
  const status = e.enhancedStatus ?? enhancedStatusOf(e.response);
  const reply = e.responseCode ?? (Number(/^([245]\d\d)\b/.exec(text)?.[1]) || undefined);
  // An application token refused (Exchange: 535 5.7.3; other servers word it their way), except SMTP AUTH switched off.
  if (e.application && reply === 535 && status !== '5.7.139') return entry('SMTP_APP_535_5.7.3');
  if (status === '5.7.0' && reply === 530 && /STARTTLS/i.test(text)) return entry('SMTP_530_5.7.0');
  if (e.auth === 'password' && e.host && MICROSOFT_SMTP.test(e.host) && reply === 535) return entry('SMTP_PASSWORD_MICROSOFT');
  if (status === '5.7.9') return entry('SMTP_534_5.7.9');
  if (status === '5.4.5') return entry('SMTP_550_5.4.5_GMAIL');
  if (GMAIL_REPLY.test(text)) {
    if (reply === 535) return entry('SMTP_535_5.7.8_GMAIL');
    if (reply === 421 && status === '4.7.0') return entry('SMTP_421_4.7.0_GMAIL');
  }
  if (e.auth === 'password' && reply === 535) return entry('SMTP_535_PASSWORD');
  if (e.auth === 'none' && (reply === 530 || (reply === 554 && status === '5.7.1') || (reply === 550 && status === '5.7.1'))) return entry('SMTP_RELAY_REFUSED');
  if (status === '5.7.139') return entry(SMTP_5_7_139.find(([re]) => re.test(text))?.[1] ?? 'SMTP_535_5.7.139');
  // SendAsDenied comes as 5.2.0 (shared with other submission failures) or 5.2.252: the text names it.
  if (status?.startsWith('5.2.') && /SendAsDenied/i.test(text)) return entry('SMTP_554_SEND_AS_DENIED');
  // The daily recipient quota is one more 5.2.0 submission failure, named only in the text.
  if (status === '5.2.0' && /SubmissionQuotaExceeded/i.test(text)) return entry('SMTP_554_5.2.0_QUOTA');
  const known = SMTP_BY_REPLY[`${reply} ${status}`] ?? (status === undefined ? undefined : SMTP_BY_STATUS[status]);
  if (known) return entry(known);
  if (reply !== undefined && reply >= 400 && reply < 500) return entry('SMTP_TEMPORARY');
  if (reply === 535 || e.code === 'EAUTH') return entry('SMTP_535');
  if (reply !== undefined && reply >= 500) return entry('SMTP_REJECTED');
  return entry('SMTP_ERROR');
}

function imap(e: ImapEvidence): Diagnosis {
  // First: Dovecot answers a login it cannot check right now with NO [UNAVAILABLE], and imapflow
  // flags every refused login as authenticationFailed.
  if (e.responseCode === 'UNAVAILABLE') return entry('IMAP_UNAVAILABLE');
  if (e.problem === 'too_large') return entry('IMAP_TOO_LARGE');
  if (e.problem === 'timeout') return entry('IMAP_TIMEOUT');
  if (e.problem === 'malformed') return entry('IMAP_MALFORMED');
  if (/not enabled for IMAP/i.test(e.response ?? '')) return entry('IMAP_GMAIL_DISABLED');
  if ((e.responseCode === 'AUTHENTICATIONFAILED' || e.authenticationFailed) && e.auth === 'password') return entry('IMAP_PASSWORD_REJECTED');
  if ((e.responseCode === 'AUTHENTICATIONFAILED' || e.authenticationFailed) && e.application) return entry('IMAP_APP_AUTHENTICATE_FAILED');
  if (e.responseCode === 'AUTHENTICATIONFAILED' || e.authenticationFailed) return entry('IMAP_AUTHENTICATIONFAILED');
  return entry('IMAP_ERROR');
}

/** Node's socket, DNS and TLS codes (plus undici's and nodemailer's wrappers) → entry. */
const NETWORK: Record<string, CatalogueCode> = {
  ECONNREFUSED: 'NET_ECONNREFUSED',
  EOUTBOUND_REFUSED: 'NET_OUTBOUND_REFUSED',
  ETIMEDOUT: 'NET_ETIMEDOUT',
  UND_ERR_CONNECT_TIMEOUT: 'NET_ETIMEDOUT',
  ENOTFOUND: 'NET_ENOTFOUND',
  EAI_AGAIN: 'NET_EAI_AGAIN',
  ECONNRESET: 'NET_ECONNRESET',
  ECONNECTION: 'NET_ECONNRESET',
  ECONNABORTED: 'NET_ECONNRESET',
  EPIPE: 'NET_ECONNRESET',
  UND_ERR_SOCKET: 'NET_ECONNRESET',
  EHOSTUNREACH: 'NET_EHOSTUNREACH',
  ENETUNREACH: 'NET_EHOSTUNREACH',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'NET_CERT_SELF_SIGNED',
  SELF_SIGNED_CERT_IN_CHAIN: 'NET_CERT_SELF_SIGNED',
  CERT_HAS_EXPIRED: 'NET_CERT_EXPIRED',
  CERT_NOT_YET_VALID: 'NET_CERT_EXPIRED',
  ERR_TLS_CERT_ALTNAME_INVALID: 'NET_CERT_HOSTNAME',
  HOSTNAME_MISMATCH: 'NET_CERT_HOSTNAME',
  ERR_SSL_WRONG_VERSION_NUMBER: 'NET_TLS_MODE',
  ETLS: 'NET_TLS_MODE',
};

/** The rest of OpenSSL's verification failures: an issuer this machine does not trust. */
const CERT_CODES = /^(CERT_|UNABLE_TO_|X509_|INVALID_CA|PATH_LENGTH_EXCEEDED)/;

/** Graph's own error codes name the case; the HTTP status decides the rest (throttling, outages). */
function graph(e: GraphEvidence): Diagnosis {
  if (e.missingPermissions?.length) {
    return entry('GRAPH_MISSING_PERMISSION', `The connection to Microsoft works, but the sign-in did not grant ${e.missingPermissions.join(' and ')} on Microsoft Graph.`);
  }
  if (e.status === 429 || e.status === 503 || e.status === 504 || e.code === 'ApplicationThrottled' || e.code === 'TooManyRequests') return entry('GRAPH_THROTTLED');
  if (e.code === 'Authorization_RequestDenied' || e.code === 'ErrorAccessDenied' || e.code === 'AccessDenied') return entry(e.application ? 'GRAPH_APP_ErrorAccessDenied' : 'GRAPH_ErrorAccessDenied');
  if (e.code === 'Request_ResourceNotFound' || e.code === 'ErrorInvalidUser' || e.code === 'ResourceNotFound') return entry('GRAPH_ErrorInvalidUser');
  if (e.code === 'ErrorRequestEntityTooLarge' || e.code === 'RequestEntityTooLarge' || e.status === 413) return entry('GRAPH_RequestEntityTooLarge');
  if (e.status === 401) return entry('GRAPH_InvalidAuthenticationToken');
  const code = `GRAPH_${e.code}`;
  if (isCode(code)) return entry(code);
  return { ...entry('GRAPH_UNKNOWN', `Microsoft Graph answered ${e.status} ${e.code}, which Mailroom does not know.`), temporary: e.status >= 500 };
}

function network(e: NetworkEvidence): Diagnosis {
  const code = NETWORK[e.code] ?? (CERT_CODES.test(e.code) ? 'NET_CERT' : undefined);
  return code ? entry(code) : entry('NET_ERROR', `The connection to the server failed (${e.code}).`);
}

/** Where Azure shows the id New-ServicePrincipal wants, when no token told Mailroom. */
export const OBJECT_ID_PLACEHOLDER = '<Object ID from Azure portal › Microsoft Entra ID › Enterprise applications › the app › Overview>';

/**
 * The application-access entries' placeholders filled with this server's ids, so the PowerShell can be
 * pasted as it stands: client id, tenant, mailbox, and the service principal's object id when a token
 * carried it (`oid`).
 */
export function fillApplication(d: Diagnosis, e: Evidence): Diagnosis {
  const app = 'application' in e ? e.application : undefined;
  if (!app && !(e.kind === 'oauth' && e.missingRoles)) return d;
  const roles = e.kind === 'oauth' ? e.missingRoles : undefined;
  const values: Record<string, string> = {
    clientId: app?.clientId ?? '<Application (client) ID>',
    tenant: app?.tenant ?? '<tenant ID>',
    mailbox: app?.mailbox ?? '<mailbox>',
    objectId: app?.objectId ?? OBJECT_ID_PLACEHOLDER,
    role: roles?.join(' and ') ?? 'the needed permission',
    api: app?.resource ?? 'Office 365 Exchange Online (SMTP.SendAsApp, IMAP.AccessAsApp) or Microsoft Graph (Mail.Send, Mail.ReadWrite)',
  };
  const fill = (t: string) => t.replace(/\{(clientId|tenant|mailbox|objectId|role|api)\}/g, (_, k: string) => values[k]!);
  return { ...d, cause: fill(d.cause), fix: fill(d.fix) };
}

/** Pure: maps protocol evidence to the catalogue entry that explains it. */
export function diagnose(e: Evidence): Diagnosis {
  return fillApplication(diagnoseEntry(e), e);
}

function diagnoseEntry(e: Evidence): Diagnosis {
  switch (e.kind) {
    case 'oauth':
      return oauth(e);
    case 'smtp':
      return smtp(e);
    case 'imap':
      return imap(e);
    case 'network':
      return network(e);
    case 'graph':
      return graph(e);
    case 'account':
      return entry('ACCOUNT_MISMATCH', `The account that signed in (${e.actual}) is not the Username on this form (${e.expected}).`);
  }
}

/** Whether trying again later can succeed without anyone changing anything (see Diagnosis.temporary). */
export function isTemporary(d: Diagnosis | Evidence): boolean {
  return 'kind' in d ? diagnose(d).temporary : d.temporary;
}

/** A failed exchange explained for the admin: the catalogue's cause, fix and step, with the peer's own words. */
export interface Explained {
  code: string;
  message: string;
  fix: string;
  guideStep: number | undefined;
  /** The evidence with the guide step, as stored on a server or message. */
  evidence: Record<string, unknown>;
}

/**
 * The cause, then what the peer said (`words`, the error's message) — unless nothing was said:
 * Mailroom's own verdict on an answer (too large, too slow, not IMAP), a target the outbound policy
 * refused before any connection, a permission missing from a token Mailroom read itself.
 */
export function explain(e: Evidence, words: string, sender?: { from: string; mailbox: string }): Explained {
  let d = diagnose(e);
  // A Send As refusal names the two addresses it is about, when the caller knows them.
  if (sender && SEND_AS_CODES.has(d.code)) d = { ...d, ...sendAsNamed(sender.from, sender.mailbox) };
  const own = (e.kind === 'imap' && e.problem !== undefined) || (e.kind === 'network' && e.code === 'EOUTBOUND_REFUSED');
  const message =
    e.kind === 'graph' && e.missingPermissions ? d.cause : e.kind === 'graph' ? `${d.cause} Microsoft Graph said: ${words}` : own ? `${d.cause} ${words}` : `${d.cause} The server said: ${words}`;
  return { code: d.code, message, fix: d.fix, guideStep: d.guideStep, evidence: { ...e, guideStep: d.guideStep } };
}
