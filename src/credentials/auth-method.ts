import type { OAuthProvider } from '../oauth/oauth-provider.ts';
import type { Sealer } from '../secrets/sealer.ts';
import type { AuthType, MailServerRecord } from '../storage/mail-server-store.ts';

/** What SMTP AUTH or an IMAP login is given: a bearer token, a password, or nothing at all. */
export type MailLogin =
  | { kind: 'xoauth2'; user: string; accessToken: string }
  | { kind: 'password'; user: string; password: string }
  | { kind: 'none' };

export type LoginMechanism = MailLogin['kind'];

/** Hands out a login for one server; `forceRefresh` after a refusal of a token believed valid. */
export type LoginSource = (forceRefresh: boolean) => Promise<MailLogin>;

export interface LoginDeps {
  sealer: Sealer;
  /** The token manager's access token for an OAuth server. */
  accessToken(serverId: string, forceRefresh: boolean): Promise<{ user: string; accessToken: string }>;
}

/**
 * One way to authenticate to a mail server (the form's Authenticate Using). The outbox, Test
 * Connection, the fetcher and the form ask the server's method; one file per method.
 */
export interface AuthMethod {
  readonly authType: AuthType;
  /** The option's label on the form. */
  readonly label: string;
  readonly mechanism: LoginMechanism;
  /** The OAuth provider behind it, if any. */
  readonly provider?: OAuthProvider;
  /** Incoming (IMAP) servers can log in with it. */
  readonly incoming: boolean;
  /** Microsoft Graph can be used with it (Send Using / Receive Using). */
  readonly graph: boolean;
  login(server: MailServerRecord, deps: LoginDeps, forceRefresh: boolean): Promise<MailLogin>;
}

export const passwordAad = (serverId: string) => `mail_server:${serverId}:password`;
