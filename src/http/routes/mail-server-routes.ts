import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Mailroom } from '../../mailroom.ts';
import { createMailServerSchema, updateMailServerSchema } from '../../servers/mail-server-input.ts';
import { actorOf, requireAdmin, requireAuth } from '../session-auth.ts';
import type { ApiDoc } from '../openapi.ts';

type IdParams = { Params: { id: string } };

export function mailServerRoutes(app: FastifyInstance, mr: Mailroom, doc: ApiDoc): void {
  const base = '/api/v1/mail-servers';
  const guard = { preHandler: requireAuth('admin') };

  doc.add('get', `${base}/defaults`, 'Defaults for a new mail server, with this installation\'s OAuth2 redirect URL');
  app.get(`${base}/defaults`, guard, async () => mr.servers.defaults());

  doc.add('get', base, 'List outgoing mail servers');
  app.get(base, guard, async () => ({ items: await mr.servers.list() }));

  doc.add('post', base, 'Create an outgoing mail server', createMailServerSchema);
  app.post(base, guard, async (req, reply) => {
    const view = await mr.servers.create(req.body);
    req.log.info({ event: 'mail_server.created', mailServerId: view.id, actor: actorOf(req) }, 'mail server created');
    return reply.code(201).send(view);
  });

  doc.add('get', `${base}/:id`, 'One mail server (never its client secret or tokens)');
  app.get<IdParams>(`${base}/:id`, guard, async (req) => mr.servers.get(req.params.id));

  doc.add('patch', `${base}/:id`, 'Change a mail server; an empty clientSecret keeps the current one', updateMailServerSchema);
  app.patch<IdParams>(`${base}/:id`, guard, async (req) => {
    const view = await mr.servers.update(req.params.id, req.body);
    req.log.info({ event: 'mail_server.updated', mailServerId: view.id, actor: actorOf(req), fields: Object.keys((req.body as object) ?? {}) }, 'mail server updated');
    return view;
  });

  doc.add('delete', `${base}/:id`, 'Delete a mail server and its tokens');
  app.delete<IdParams>(`${base}/:id`, guard, async (req, reply) => {
    await mr.servers.remove(req.params.id);
    req.log.info({ event: 'mail_server.deleted', mailServerId: req.params.id, actor: actorOf(req) }, 'mail server deleted');
    return reply.code(204).send();
  });

  doc.add('post', `${base}/:id/connect`, 'Start "Connect your Outlook account": returns the Microsoft sign-in URL');
  // A browser sign-in bound to the admin who starts it: sessions only.
  app.post<IdParams>(`${base}/:id/connect`, { preHandler: requireAdmin }, async (req) => mr.connect.start(req.params.id, req.admin!.id));

  doc.add('post', `${base}/:id/test`, 'Test Connection: TLS, XOAUTH2 login, MAIL FROM and RCPT TO without sending');
  app.post<IdParams>(`${base}/:id/test`, guard, async (req) => {
    const r = await mr.servers.test(req.params.id);
    req.log.info({ event: 'mail_server.tested', mailServerId: req.params.id, ok: r.ok, code: r.code }, 'connection test');
    return r;
  });

  const sendTestBody = z.object({ to: z.string() });
  doc.add('post', `${base}/:id/send-test`, 'Send a real test email from the mailbox', sendTestBody);
  app.post<IdParams>(`${base}/:id/send-test`, guard, async (req) => {
    const r = await mr.servers.sendTest(req.params.id, req.body);
    req.log.info({ event: 'mail_server.test_email', mailServerId: req.params.id, ok: r.ok, code: r.code }, 'test email');
    return r;
  });
}
