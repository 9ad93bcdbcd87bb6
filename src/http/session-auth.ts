import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { timingSafeEqual } from 'node:crypto';
import { MailroomError } from '../errors/errors.ts';
import type { Mailroom } from '../mailroom.ts';
import { type ApiKeyScope, scopeAllows } from '../apikeys/api-key-service.ts';
import type { OutboxAccess } from '../outbox/outbox-service.ts';

export const SESSION_COOKIE = 'mailroom_session';

export interface RequestAdmin {
  id: string;
  email: string;
  csrfToken: string;
}

export interface RequestApiKey {
  id: string;
  name: string;
  scopes: ApiKeyScope[];
  mailServerIds: string[] | null;
  incomingServerIds: string[] | null;
}

declare module 'fastify' {
  interface FastifyRequest {
    admin: RequestAdmin | null;
    apiKey: RequestApiKey | null;
  }
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function cookieOptions(mr: Mailroom) {
  return {
    path: '/',
    httpOnly: true,
    // Lax keeps the cookie on the top-level navigation back from Microsoft's sign-in page.
    sameSite: 'lax' as const,
    secure: mr.config.baseUrl.protocol === 'https:',
  };
}

/** Resolves the API key or the session cookie on every request; routes then declare what they need. */
export function registerSessionAuth(app: FastifyInstance, mr: Mailroom): void {
  app.decorateRequest('admin', null);
  app.decorateRequest('apiKey', null);
  app.addHook('onRequest', async (req) => {
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      const m = /^Bearer\s+(\S+)$/i.exec(auth);
      const key = m ? await mr.apiKeys.authenticate(m[1]!) : undefined;
      if (!key) {
        throw new MailroomError('MR_AUTH_REQUIRED', 'The API key is invalid or revoked.', { fix: 'Send Authorization: Bearer <key> with an active key from Settings > Technical > API Keys.' });
      }
      req.apiKey = { id: key.id, name: key.name, scopes: key.scopes, mailServerIds: key.mailServerIds, incomingServerIds: key.incomingServerIds };
      return;
    }
    const sid = req.cookies[SESSION_COOKIE];
    if (!sid) return;
    const s = await mr.admins.resolveSession(sid);
    if (s) req.admin = { id: s.adminId, email: s.email, csrfToken: s.csrfToken };
  });
}

const listed = (xs: readonly string[]) => (xs.length < 2 ? xs.join('') : `${xs.slice(0, -1).join(', ')} or ${xs[xs.length - 1]}`);

/**
 * A session admin (with CSRF check) or an API key holding any one of `need` (or admin).
 */
export function requireAuth(...need: ApiKeyScope[]) {
  const accepted = [...need.filter((n) => n !== 'admin'), 'admin'];
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (req.apiKey) {
      if (!scopeAllows(req.apiKey.scopes, ...need)) {
        const has = req.apiKey.scopes.length ? `the scope${req.apiKey.scopes.length > 1 ? 's' : ''} ${req.apiKey.scopes.join(', ')}` : 'no scope';
        throw new MailroomError('MR_AUTH_FORBIDDEN', `This API key has ${has}; this request needs ${listed(accepted)}.`, {
          fix: `Use a key with the ${listed(accepted)} scope, created in Settings > Technical > API Keys.`,
        });
      }
      return;
    }
    return requireAdmin(req, reply);
  };
}

/**
 * What the caller may see of the outbox: a session admin, an admin key and an outbox:read key see
 * every message (an outbox:read key only those of its servers); a send key only the ones it queued.
 */
export function outboxReadAccess(req: FastifyRequest): OutboxAccess {
  const k = req.apiKey;
  if (!k || k.scopes.includes('admin')) return {};
  return { ...(!k.scopes.includes('outbox:read') && { apiKeyId: k.id }), ...(k.mailServerIds && { mailServerIds: k.mailServerIds }) };
}

/** Whose messages the caller may retry or cancel: a send key only its own. */
export function outboxActAccess(req: FastifyRequest): OutboxAccess {
  const k = req.apiKey;
  if (!k || k.scopes.includes('admin')) return {};
  return { apiKeyId: k.id, ...(k.mailServerIds && { mailServerIds: k.mailServerIds }) };
}

/** The incoming servers whose mail the caller may read; undefined: every one. */
export function inboundServerIds(req: FastifyRequest): string[] | undefined {
  const k = req.apiKey;
  if (!k || k.scopes.includes('admin')) return undefined;
  return k.incomingServerIds ?? undefined;
}

/**
 * Session required; state-changing requests must also echo the session's CSRF token in X-CSRF-Token
 * (synchronizer token: a cross-site form or fetch cannot read it).
 */
export async function requireAdmin(req: FastifyRequest, _reply: FastifyReply): Promise<void> {
  if (req.apiKey) {
    // Browser sign-ins (Connect your Outlook account) are bound to the admin who starts them.
    throw new MailroomError('MR_AUTH_FORBIDDEN', 'This request needs an admin signed in to the web UI; no API key can make it, whatever its scopes.', {
      fix: 'Open Mailroom in a browser, log in as an admin and do it there.',
    });
  }
  if (!req.admin) {
    throw new MailroomError('MR_AUTH_REQUIRED', 'Log in to continue.', { fix: 'Open /login and sign in with your admin email and password.' });
  }
  if (UNSAFE.has(req.method)) {
    const sent = req.headers['x-csrf-token'];
    if (typeof sent !== 'string' || !sameToken(sent, req.admin.csrfToken)) {
      throw new MailroomError('MR_AUTH_CSRF', 'The request is missing its CSRF token.', { fix: 'Reload the page and try again.' });
    }
  }
}

/** Who made the request, for the log: an admin id or an API key id. */
export function actorOf(req: FastifyRequest): string {
  return req.admin ? `admin:${req.admin.id}` : req.apiKey ? `apikey:${req.apiKey.id}` : 'anonymous';
}

/** Writes the audit trail and the log line for a change someone made. */
export async function audited(
  req: FastifyRequest,
  mr: Mailroom,
  action: string,
  target?: { type: string; id: string },
  details?: Record<string, unknown>,
): Promise<void> {
  const actor = actorOf(req);
  req.log.info({ event: action, actor, ...(target && { targetType: target.type, targetId: target.id }), ...details }, action);
  await mr.audit.record(actor, action, target, details);
}
