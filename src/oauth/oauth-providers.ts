import { AUTH_METHODS, authMethodOf } from '../credentials/auth-methods.ts';
import { MailroomError } from '../errors/errors.ts';
import type { MailServerRecord } from '../storage/mail-server-store.ts';
import type { OAuthProvider } from './oauth-provider.ts';

/** The providers behind the OAuth options of Authenticate Using. */
export const OAUTH_PROVIDERS: readonly OAuthProvider[] = AUTH_METHODS.flatMap((m) => (m.provider ? [m.provider] : []));

/** The server's OAuth provider, or undefined for methods without OAuth. */
export function oauthProviderOf(server: Pick<MailServerRecord, 'authType'>): OAuthProvider | undefined {
  return authMethodOf(server).provider;
}

export function requireOAuthProvider(server: Pick<MailServerRecord, 'authType'>): OAuthProvider {
  const p = oauthProviderOf(server);
  if (!p) {
    throw new MailroomError('MR_OAUTH_NOT_CONFIGURED', `This mail server authenticates with ${authMethodOf(server).label}, not with an OAuth sign-in.`, {
      field: 'authType',
      fix: 'Use Test Connection; to sign in with OAuth, change Authenticate Using first.',
    });
  }
  return p;
}

export function oauthProviderById(id: string): OAuthProvider | undefined {
  return OAUTH_PROVIDERS.find((p) => p.id === id);
}
