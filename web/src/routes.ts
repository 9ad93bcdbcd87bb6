// Client-side route table (patterns only, so any module can ask whether a screen exists).

export const paths = {
  login: '/login',
  setup: '/setup',
  settings: '/settings',
  mailServers: '/settings/technical/mail-servers',
  mailServerNew: '/settings/technical/mail-servers/new',
  mailServer: '/settings/technical/mail-servers/:id',
  emails: '/settings/technical/emails',
  email: '/settings/technical/emails/:id',
  apiKeys: '/settings/technical/api-keys',
  incomingMailServers: '/settings/technical/incoming-mail-servers',
  incomingMailServerNew: '/settings/technical/incoming-mail-servers/new',
  incomingMailServer: '/settings/technical/incoming-mail-servers/:id',
  incomingMessages: '/settings/technical/incoming-messages',
  incomingMessage: '/settings/technical/incoming-messages/:id',
  webhooks: '/settings/technical/webhooks',
  webhook: '/settings/technical/webhooks/:id',
  outlookGuide: '/settings/technical/outlook-guide',
  gmailGuide: '/settings/technical/gmail-guide',
  health: '/settings/technical/health',
  auditLog: '/settings/technical/audit-log',
  suppressions: '/settings/technical/suppressions',
} as const;

export type RouteName = keyof typeof paths;

export interface RouteMatch {
  name: RouteName;
  params: Record<string, string>;
}

// Order matters: literal segments before parameters.
const order: RouteName[] = [
  'login',
  'setup',
  'settings',
  'mailServers',
  'mailServerNew',
  'mailServer',
  'emails',
  'email',
  'apiKeys',
  'incomingMailServers',
  'incomingMailServerNew',
  'incomingMailServer',
  'incomingMessages',
  'incomingMessage',
  'webhooks',
  'webhook',
  'outlookGuide',
  'gmailGuide',
  'health',
  'auditLog',
  'suppressions',
];

export function matchRoute(pathname: string): RouteMatch | null {
  const path = pathname.length > 1 ? pathname.replace(/\/+$/, '') : pathname;
  const segs = path.split('/');
  for (const name of order) {
    const pat = paths[name].split('/');
    if (pat.length !== segs.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < pat.length && ok; i++) {
      const p = pat[i] ?? '';
      const s = segs[i] ?? '';
      if (p.startsWith(':')) {
        if (s === '') ok = false;
        else params[p.slice(1)] = decodeURIComponent(s);
      } else if (p !== s) ok = false;
    }
    if (ok) return { name, params };
  }
  return null;
}

export function routeExists(pathname: string): boolean {
  return matchRoute(pathname) !== null;
}

export function mailServerPath(id: string): string {
  return `${paths.mailServers}/${encodeURIComponent(id)}`;
}

export function emailPath(id: string): string {
  return `${paths.emails}/${encodeURIComponent(id)}`;
}

export function incomingMailServerPath(id: string): string {
  return `${paths.incomingMailServers}/${encodeURIComponent(id)}`;
}

export function incomingMessagePath(id: string): string {
  return `${paths.incomingMessages}/${encodeURIComponent(id)}`;
}

export function webhookPath(id: string): string {
  return `${paths.webhooks}/${encodeURIComponent(id)}`;
}

/** Form of an outgoing or incoming server. */
export function serverFormPath(direction: 'outgoing' | 'incoming', id: string): string {
  return direction === 'incoming' ? incomingMailServerPath(id) : mailServerPath(id);
}

/** Each OAuth provider's "How to connect …" guide, by provider id (the API's authMethods[].oauth.id). */
const GUIDES: Record<string, string> = { outlook: paths.outlookGuide, gmail: paths.gmailGuide };

/** The guide of a provider; the Outlook guide for an unknown id. */
export function guidePath(providerId: string | null | undefined, opts: { step?: number | null; server?: string } = {}): string {
  const base = (providerId && GUIDES[providerId]) || paths.outlookGuide;
  const query = opts.server ? `?${new URLSearchParams({ server: opts.server }).toString()}` : '';
  return `${base}${query}${opts.step ? `#step-${opts.step}` : ''}`;
}

export const hasGuide = (providerId: string | null | undefined): boolean => !!providerId && providerId in GUIDES;

/** A guide, optionally at a step (1–7): /settings/technical/outlook-guide#step-N */
export function guideStepPath(step?: number | null, providerId?: string | null): string {
  return guidePath(providerId ?? 'outlook', { step });
}

/** The guide with a server chosen in its picker. */
export function outlookGuidePath(serverId?: string): string {
  return serverId ? `${paths.outlookGuide}?${new URLSearchParams({ server: serverId }).toString()}` : paths.outlookGuide;
}

/** Only same-app absolute paths are accepted as a post-login destination. */
export function safeNext(next: string | null): string {
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return paths.settings;
  if (next === paths.login || next.startsWith(`${paths.login}?`)) return paths.settings;
  return next;
}
