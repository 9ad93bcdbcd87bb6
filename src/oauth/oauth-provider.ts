import type { z } from 'zod';
import type { Config } from '../config/config.ts';
import type { OAuthEvidence } from '../diagnose/evidence.ts';
import type { MailServerRecord } from '../storage/mail-server-store.ts';
import type { ClientCredential } from './client-auth.ts';

/** One OAuth client registration as a provider needs it for one request. */
export interface OAuthApp {
  /** What this connection asks for and refreshes. */
  scopes: readonly string[];
  /** The provider's sign-in host (authorize and token endpoints; national clouds, test peers). */
  authorityHost: string;
  /** Only providers with tenants read it (Microsoft's common/organizations/GUID). */
  tenant: string;
  clientId: string;
  /** The client secret or certificate every token request authenticates with (see client-auth.ts). */
  credential: ClientCredential;
  redirectUri: string;
}

export interface OAuthTokens {
  accessToken: string;
  /** Absent when the provider did not rotate it (or offline access was not granted). */
  refreshToken: string | undefined;
  expiresAt: Date;
  scope: string | undefined;
  /** Some providers say when the refresh token dies (Google: apps in "Testing" publishing status). */
  refreshTokenExpiresInSeconds?: number;
  /** The x5t#S256 of the pending certificate this request proved (it may now become current). */
  provenCertificate?: string;
  /** The pending certificate was refused and the current one used: why, for the admin. */
  pendingCertificateFailure?: unknown;
}

export interface OAuthIdentity {
  /** The mailbox that signed in, lower-cased. */
  account: string | undefined;
  /** Microsoft's tid; null for providers without tenants. */
  tenantId: string | null;
}

export interface AuthorizeParams {
  state: string;
  nonce: string;
  codeChallenge: string;
  loginHint: string;
}

/**
 * An OAuth identity provider as the connect flow, the token manager, the server form and the guide
 * know it. Each provider is one file (outlook.ts, google.ts); nothing outside them names one.
 */
export interface OAuthProvider {
  /** Path segment of the redirect URL: `${BASE_URL}/oauth2/${id}/callback`. */
  readonly id: 'outlook' | 'gmail';
  /** As in "Connect your Outlook account". */
  readonly accountName: string;
  /** Sign-in is per directory tenant (the form's Tenant field). */
  readonly tenants: boolean;
  /** Where the client secret comes from, for "this server has no client secret". */
  readonly secretHelp: string;
  /** The form's Client ID and Client Secret as this provider issues them, with its own messages. */
  readonly fields: { readonly clientId: z.ZodType<string>; readonly clientSecret: z.ZodType<string> };
  /** Outgoing and incoming defaults of the provider's own mail hosts. */
  readonly hosts: { readonly smtp: { host: string; port: number; security: 'starttls' | 'tls' }; readonly imap: { host: string; port: number; security: 'tls' } };
  /** The form's help next to the provider's fields, in the words of the provider's console. */
  readonly formHelp: { readonly redirectUri: string; readonly clientId: string; readonly clientIdPlaceholder: string; readonly clientSecret: string; readonly username: string };
  /**
   * What the server form offers beyond Client ID and secret: where the secret's expiry date is read
   * (null: its secrets do not expire), sending as a shared mailbox, Client Credential and Access
   * (certificate and application access), and the provider's own sending limits as hints.
   */
  readonly formOptions: {
    readonly secretExpiryHelp: string | null;
    readonly sharedMailbox: boolean;
    readonly applicationAccess: boolean;
    readonly sendingLimitHints: Readonly<Partial<Record<'maxConnections' | 'messagesPerMinute' | 'recipientsPerDay' | 'recipientsPerMessage', string>>> | null;
  };
  /** What to change when the provider granted no refresh token. */
  readonly noRefreshTokenFix: string;
  scopes(server: Pick<MailServerRecord, 'transport' | 'direction'>, config: Config): readonly string[];
  app(server: MailServerRecord, config: Config, credential: ClientCredential): OAuthApp;
  /** The provider accepts certificate credentials (private_key_jwt). */
  readonly certificates?: boolean;
  buildAuthorizeUrl(app: Omit<OAuthApp, 'credential'>, p: AuthorizeParams): string;
  exchangeCode(app: OAuthApp, callback: URLSearchParams, p: { codeVerifier: string; nonce: string; now: Date }): Promise<{ tokens: OAuthTokens; identity: OAuthIdentity }>;
  refreshTokens(app: OAuthApp, refreshToken: string, now: Date): Promise<OAuthTokens>;
  /** The callback's `error` parameters → evidence. */
  authorizeErrorEvidence(params: URLSearchParams): OAuthEvidence | undefined;
  /** OAuth errors after which the stored grant is dead and only a new sign-in helps. */
  grantIsDead(ev: OAuthEvidence): boolean;
  /** Application access (no user sign-in): the client-credentials grant, for providers that offer it. */
  clientCredentials?(app: OAuthApp, now: Date): Promise<{ accessToken: string; expiresAt: Date; roles: string[]; tenantId: string | null; appId: string | null; objectId: string | null; provenCertificate?: string }>;
  /** The `.default` scope an application token of this transport asks for. */
  applicationScope?(server: Pick<MailServerRecord, 'transport'>, config: Config): string;
  /** The application permission (`roles`) the transport needs. */
  requiredRole?(server: Pick<MailServerRecord, 'transport' | 'direction'>): string;
  /** A page where a tenant administrator consents for everyone (Microsoft only), if the provider has one. */
  adminConsentUrl?(app: Omit<OAuthApp, 'credential'>, serverId: string): string;
  /**
   * Ends the grant at the provider (the refresh token and what it issued), where the provider has an
   * endpoint for one grant. Absent: `revokeHelp` says what to do instead.
   */
  revokeGrant?(app: OAuthApp, refreshToken: string): Promise<void>;
  /** Where the provider cannot revoke one grant: how the user or an admin ends it. */
  readonly revokeHelp?: string;
  /** What the admin should know about a grant that works today (e.g. a refresh token that dies in 7 days). */
  connectWarning?(tokens: OAuthTokens): OAuthEvidence | undefined;
}

export const connectLabel = (p: Pick<OAuthProvider, 'accountName'>) => `Connect your ${p.accountName} account`;
