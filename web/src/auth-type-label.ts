import type { AuthType } from './api.ts';

/** For lists, before the API's authMethods are at hand; the forms take the labels from the API. */
export const AUTH_TYPE_LABELS: Record<AuthType, string> = {
  outlook_oauth: 'Outlook OAuth Authentication',
  gmail_oauth: 'Gmail OAuth Authentication',
  password: 'Username/Password',
  none: 'None',
};

export function authTypeLabel(t: AuthType): string {
  return AUTH_TYPE_LABELS[t] ?? t;
}
