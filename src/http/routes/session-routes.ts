import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { normalizeEmail } from '../../auth/admin-service.ts';
import { MailroomError } from '../../errors/errors.ts';
import type { Mailroom } from '../../mailroom.ts';
import { parseInput } from '../../errors/parse-input.ts';
import { cookieOptions, requireAdmin, SESSION_COOKIE } from '../session-auth.ts';
import type { ApiDoc } from '../openapi.ts';

const loginSchema = z.object({
  email: z.string({ error: 'Enter your email' }).trim().min(1, { error: 'Enter your email' }).max(320),
  password: z.string({ error: 'Enter your password' }).min(1, { error: 'Enter your password' }).max(1024),
});

const setupSchema = z.object({
  token: z.string({ error: 'The setup link is incomplete' }).min(1, { error: 'The setup link is incomplete' }).max(200, { error: 'The setup link is not valid' }),
  email: z.string({ error: 'Enter your email' }).max(320, { error: 'An email address is at most 320 characters' }),
  password: z.string({ error: 'Choose a password' }).max(1024, { error: 'A password is at most 1,024 characters' }),
});

export function sessionRoutes(app: FastifyInstance, mr: Mailroom, doc: ApiDoc): void {

  const startSession = async (reply: FastifyReply, admin: { id: string; email: string }) => {
    const { sessionId, csrfToken } = await mr.admins.startSession(admin.id);
    reply.setCookie(SESSION_COOKIE, sessionId, cookieOptions(mr));
    return { admin: { id: admin.id, email: admin.email }, csrfToken };
  };

  doc.add('get', '/api/v1/session', 'The signed-in admin and the CSRF token for state-changing requests');
  app.get('/api/v1/session', { onRequest: requireAdmin }, async (req) => ({
    admin: { id: req.admin!.id, email: req.admin!.email },
    csrfToken: req.admin!.csrfToken,
  }));

  doc.add('post', '/api/v1/session', 'Log in with email and password', loginSchema);
  // Small bodies only on the routes anyone may call.
  const anonymous = { bodyLimit: 16 * 1024 };
  app.post('/api/v1/session', anonymous, async (req, reply) => {
    const { email, password } = parseInput(loginSchema, req.body);
    const attempt = await mr.logins.attempt(req.ip, normalizeEmail(email));
    if (!attempt.ok) {
      const wait = attempt.retryAfterMs;
      reply.header('retry-after', Math.ceil(wait / 1000));
      req.log.warn({ event: 'auth.login_limited', ip: req.ip }, 'login refused: too many failed attempts');
      throw new MailroomError('MR_AUTH_RATE_LIMITED', `Too many failed logins. Try again in ${Math.ceil(wait / 60_000)} minute(s).`, {
        fix: 'Wait, or reset the password with: npx mailroom admin create --email E --password-stdin --reset',
      });
    }
    const admin = await mr.admins.checkCredentials(email, password);
    if (!admin) {
      req.log.warn({ event: 'auth.login_failed', ip: req.ip }, 'failed login');
      throw new MailroomError('MR_AUTH_INVALID_CREDENTIALS', 'Wrong email or password.', { field: 'password' });
    }
    await attempt.succeeded();
    req.log.info({ event: 'auth.login', adminId: admin.id }, 'admin logged in');
    await mr.audit.record(`admin:${admin.id}`, 'auth.login', { type: 'admin', id: admin.id }, { ip: req.ip });
    return startSession(reply, admin);
  });

  doc.add('delete', '/api/v1/session', 'Log out');
  // With a session, logging out is a state change like any other and needs the CSRF token (a
  // cross-site request must not end the admin's session); without one it only clears the cookie.
  const csrfIfSession = async (req: FastifyRequest, reply: FastifyReply) => (req.admin ? requireAdmin(req, reply) : undefined);
  app.delete('/api/v1/session', { onRequest: csrfIfSession }, async (req, reply) => {
    const sid = req.cookies[SESSION_COOKIE];
    if (sid) await mr.admins.endSession(sid);
    reply.clearCookie(SESSION_COOKIE, cookieOptions(mr));
    return reply.code(204).send();
  });

  doc.add('post', '/api/v1/setup', 'Create the first admin with the one-time setup link', setupSchema);
  app.post('/api/v1/setup', anonymous, async (req, reply) => {
    const { token, email, password } = parseInput(setupSchema, req.body);
    const admin = await mr.admins.completeSetup(token, email, password);
    req.log.info({ event: 'auth.setup', adminId: admin.id }, 'first admin created');
    return startSession(reply, admin);
  });
}
