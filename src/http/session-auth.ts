import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { timingSafeEqual } from 'node:crypto';
import { MailroomError } from '../errors/errors.ts';
import type { Mailroom } from '../mailroom.ts';

export const SESSION_COOKIE = 'mailroom_session';

export interface RequestAdmin {
  id: string;
  email: string;
  csrfToken: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    admin: RequestAdmin | null;
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

/** Resolves the session cookie on every request; routes then call requireAdmin. */
export function registerSessionAuth(app: FastifyInstance, mr: Mailroom): void {
  app.decorateRequest('admin', null);
  app.addHook('onRequest', async (req) => {
    const sid = req.cookies[SESSION_COOKIE];
    if (!sid) return;
    const s = await mr.admins.resolveSession(sid);
    if (s) req.admin = { id: s.adminId, email: s.email, csrfToken: s.csrfToken };
  });
}

/**
 * Session required; state-changing requests must also echo the session's CSRF token in X-CSRF-Token
 * (synchronizer token: a cross-site form or fetch cannot read it).
 */
export async function requireAdmin(req: FastifyRequest, _reply: FastifyReply): Promise<void> {
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
