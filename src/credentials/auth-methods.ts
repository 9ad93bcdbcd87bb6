import { googleProvider } from '../oauth/google.ts';
import { outlookProvider } from '../oauth/outlook.ts';
import type { AuthType, MailServerRecord } from '../storage/mail-server-store.ts';
import type { AuthMethod } from './auth-method.ts';
import { noAuthMethod } from './no-auth-method.ts';
import { oauthAuthMethod } from './oauth-auth-method.ts';
import { passwordAuthMethod } from './password-auth-method.ts';

/** Every Authenticate Using option, in the form's order. */
export const AUTH_METHODS: readonly AuthMethod[] = [
  oauthAuthMethod('outlook_oauth', 'Outlook OAuth Authentication', outlookProvider, { graph: true }),
  oauthAuthMethod('gmail_oauth', 'Gmail OAuth Authentication', googleProvider, { graph: false }),
  passwordAuthMethod,
  noAuthMethod,
];

export function authMethodOf(server: Pick<MailServerRecord, 'authType'>): AuthMethod {
  return AUTH_METHODS.find((m) => m.authType === server.authType) ?? AUTH_METHODS[0]!;
}

export const isAuthType = (v: string): v is AuthType => AUTH_METHODS.some((m) => m.authType === v);
