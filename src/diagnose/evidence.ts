/**
 * A failure of application access (client credentials): the ids the PowerShell fixes are filled in
 * with. `objectId` is the service principal's (Enterprise application's) object id, known only when
 * a token carried it (`oid`).
 */
export interface ApplicationContext {
  clientId: string;
  tenant: string;
  mailbox: string;
  objectId?: string;
  /** The API whose application permission is missing: "Office 365 Exchange Online" or "Microsoft Graph". */
  resource?: string;
}

/** What a failed exchange with Microsoft or a mail server left behind, kept verbatim for the admin. */
export interface OAuthEvidence {
  kind: 'oauth';
  /** The OAuthProvider id when it is not Microsoft's (absent: Microsoft, as before providers were recorded). */
  provider?: string;
  /** Where it failed: the authorize redirect, the token endpoint or the id_token check. */
  stage: 'authorize' | 'token' | 'refresh' | 'id_token';
  error: string;
  errorDescription?: string;
  /** AADSTS numbers, from `error_codes` or parsed from the description. */
  errorCodes: number[];
  httpStatus?: number;
  traceId?: string;
  correlationId?: string;
  /**
   * The stored client secret has the shape of a GUID, i.e. of the Secret ID Azure shows next to the
   * secret's Value (see `looksLikeGuid`). With AADSTS7000215 it names the mistake exactly.
   */
  secretLooksLikeGuid?: boolean;
  /** The request authenticated with a certificate: its SHA-1 thumbprint (upper-case hex, as Azure lists it). */
  certificateThumbprint?: string;
  /**
   * What the request asked for: the API's delegated permissions by short name (Mail.Send, SMTP.Send)
   * and the resource they belong to (https://graph.microsoft.com). A missing consent is explained
   * with the permissions of the transport that asked.
   */
  permissions?: string[];
  resource?: string;
  /** A token answer Mailroom refused (too slow, too large, a token too long): the endpoint's origin, never its path. */
  origin?: string;
  /** The bound it passed: milliseconds (time), bytes (response), characters (token). */
  bound?: number;
  /** Which token was too long, and its length; never the token itself. */
  tokenName?: 'access_token' | 'refresh_token' | 'id_token';
  tokenLength?: number;
  /** Application access: the roles the transport needs and the token lacks, and those it has. */
  missingRoles?: string[];
  roles?: string[];
  application?: ApplicationContext;
}

export interface SmtpEvidence {
  kind: 'smtp';
  /** How the session logged in (absent: XOAUTH2, before methods were recorded). A 535 means another thing per method. */
  auth?: 'xoauth2' | 'password' | 'none';
  /** The server's host, recorded with `auth`: some hosts answer a method with their own fix (basic auth retired). */
  host?: string;
  /** nodemailer's error code: EAUTH, EENVELOPE, EMESSAGE, ... */
  code?: string;
  command?: string;
  responseCode?: number;
  /** RFC 3463 enhanced status code, e.g. 5.7.139. */
  enhancedStatus?: string;
  response?: string;
  /** The login was an application token (client credentials) for this mailbox. */
  application?: ApplicationContext;
}

export interface ImapEvidence {
  kind: 'imap';
  auth?: 'xoauth2' | 'password';
  host?: string;
  /** RFC 5530 response code from the tagged reply, e.g. AUTHENTICATIONFAILED, UNAVAILABLE. */
  responseCode?: string;
  response?: string;
  /**
   * The server refused AUTHENTICATE/LOGIN (imapflow's `authenticationFailed`). Needed because
   * Exchange answers `NO AUTHENTICATE failed.` without a response code.
   */
  authenticationFailed?: boolean;
  /**
   * Mailroom gave up on the exchange itself: an answer past its size limits, no answer in time, or
   * an answer that does not follow the protocol. `response` then holds what was seen.
   */
  problem?: 'too_large' | 'timeout' | 'malformed';
  /** The login was an application token (client credentials) for this mailbox. */
  application?: ApplicationContext;
}

export interface NetworkEvidence {
  kind: 'network';
  /** Node's error code: ECONNREFUSED, ETIMEDOUT, ENOTFOUND, CERT_HAS_EXPIRED, ... */
  code: string;
  host?: string;
  port?: number;
  message: string;
}

export interface AccountEvidence {
  kind: 'account';
  expected: string;
  actual: string;
}

/** Microsoft Graph's error answer: {"error":{"code","message"}} with the HTTP status. */
export interface GraphEvidence {
  kind: 'graph';
  status: number;
  /** Graph's error code: ErrorSendAsDenied, MailboxNotEnabledForRESTAPI, ApplicationThrottled, ... */
  code: string;
  message: string;
  /** The request that failed, e.g. "POST /users/{mailbox}/sendMail". */
  request?: string;
  retryAfterSeconds?: number;
  requestId?: string;
  /** Test Connection: the Graph permissions the token lacks. */
  missingPermissions?: string[];
  /** The login was an application token (client credentials) for this mailbox. */
  application?: ApplicationContext;
}

export type Evidence = OAuthEvidence | SmtpEvidence | ImapEvidence | NetworkEvidence | AccountEvidence | GraphEvidence;

/** AADSTS numbers from Microsoft's error JSON; falls back to the description text ("AADSTS50011: ..."). */
export function aadstsCodes(errorCodes: unknown, description: string | undefined): number[] {
  if (Array.isArray(errorCodes)) {
    const nums = errorCodes.map(Number).filter((n) => Number.isInteger(n) && n > 0);
    if (nums.length) return nums;
  }
  const found = [...(description ?? '').matchAll(/AADSTS(\d+)/g)].map((m) => Number(m[1]));
  return [...new Set(found)];
}

export function enhancedStatusOf(response: string | undefined): string | undefined {
  return /\b([245]\.\d{1,3}\.\d{1,3})\b/.exec(response ?? '')?.[1];
}

const GUID = /^\s*[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\s*$/i;

/** Azure's Secret ID is a GUID; a secret Value never is (about 40 characters with `~`, `.`, `_`). */
export function looksLikeGuid(value: string): boolean {
  return GUID.test(value);
}
