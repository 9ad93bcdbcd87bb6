import type { OAuthProvider } from '../oauth/oauth-provider.ts';
import type { AuthType } from '../storage/mail-server-store.ts';
import type { AuthMethod } from './auth-method.ts';

/** XOAUTH2 with an access token from the token manager, for any OAuth provider. */
export function oauthAuthMethod(authType: AuthType, label: string, provider: OAuthProvider, opts: { graph: boolean }): AuthMethod {
  return {
    authType,
    label,
    mechanism: 'xoauth2',
    provider,
    incoming: true,
    graph: opts.graph,
    async login(server, deps, forceRefresh) {
      const t = await deps.accessToken(server.id, forceRefresh);
      return { kind: 'xoauth2', user: t.user, accessToken: t.accessToken };
    },
  };
}
