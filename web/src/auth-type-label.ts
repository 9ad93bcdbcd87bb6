import type { AuthType } from './api.ts';

export const AUTH_TYPE_LABELS: Record<AuthType, string> = {
  outlook_oauth: 'Outlook OAuth Authentication',
};

export function authTypeLabel(t: AuthType): string {
  return AUTH_TYPE_LABELS[t] ?? t;
}
