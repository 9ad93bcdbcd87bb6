import { MailroomError } from '../errors/errors.ts';
import type { MailServerRecord } from '../storage/mail-server-store.ts';
import type { OAuthProvider } from './oauth-provider.ts';
import { outlookProvider } from './outlook.ts';

/** Authenticate Using → the OAuth provider behind it. Adding a provider adds one line here. */
const BY_AUTH_TYPE: Partial<Record<MailServerRecord['authType'], OAuthProvider>> = {
  outlook_oauth: outlookProvider,
};

export const OAUTH_PROVIDERS: readonly OAuthProvider[] = Object.values(BY_AUTH_TYPE);

/** The server's OAuth provider, or undefined for methods without OAuth. */
export function oauthProviderOf(server: Pick<MailServerRecord, 'authType'>): OAuthProvider | undefined {
  return BY_AUTH_TYPE[server.authType];
}

export function requireOAuthProvider(server: Pick<MailServerRecord, 'authType'>): OAuthProvider {
  const p = oauthProviderOf(server);
  if (!p) throw new MailroomError('MR_OAUTH_NOT_CONFIGURED', 'This mail server does not sign in with OAuth.', { field: 'authType', fix: 'Choose an OAuth method in Authenticate Using, or use Test Connection directly.' });
  return p;
}

export function oauthProviderById(id: string): OAuthProvider | undefined {
  return OAUTH_PROVIDERS.find((p) => p.id === id);
}
