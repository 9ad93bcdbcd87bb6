import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Mailroom } from '../../mailroom.ts';
import { createMailServerSchema, updateMailServerSchema } from '../../servers/mail-server-input.ts';
import { audited, requireAuth } from '../session-auth.ts';
import type { ApiDoc } from '../openapi.ts';

type IdParams = { Params: { id: string } };

export function mailServerRoutes(app: FastifyInstance, mr: Mailroom, doc: ApiDoc): void {
  const base = '/api/v1/mail-servers';
  const guard = { onRequest: requireAuth('admin') };

  doc.add('get', `${base}/defaults`, 'Defaults for a new mail server, with this installation\'s OAuth2 redirect URL');
  app.get(`${base}/defaults`, guard, async () => mr.servers.defaults());

  doc.add('get', base, 'List outgoing mail servers (query: owner, shared=true, state, q, limit, cursor); answers items, nextCursor, total');
  app.get(base, guard, async (req) => mr.servers.page(req.query));

  doc.add('get', '/api/v1/owners', 'Owners of personal mailboxes (query: direction=outgoing|incoming, q, limit, cursor), by owner: answers items of { owner, servers }, nextCursor');
  app.get('/api/v1/owners', guard, async (req) => mr.servers.owners(req.query));

  doc.add('post', base, 'Create an outgoing mail server', createMailServerSchema);
  app.post(base, guard, async (req, reply) => {
    const view = await mr.servers.create(req.body);
    // Which mailbox the server acts for, and how: an application connection can reach any mailbox the tenant allows.
    await audited(req, mr, 'mail_server.created', { type: 'mail_server', id: view.id }, { name: view.name, username: view.username, mailbox: view.username, access: view.access, tokenSourceId: view.tokenSourceId });
    return reply.code(201).send(view);
  });

  doc.add('get', `${base}/:id`, 'One mail server (never its client secret or tokens)');
  app.get<IdParams>(`${base}/:id`, guard, async (req) => mr.servers.get(req.params.id));

  doc.add('patch', `${base}/:id`, 'Change a mail server; an empty clientSecret keeps the current one', updateMailServerSchema);
  app.patch<IdParams>(`${base}/:id`, guard, async (req) => {
    const view = await mr.servers.update(req.params.id, req.body);
    await audited(req, mr, 'mail_server.updated', { type: 'mail_server', id: view.id }, { fields: Object.keys((req.body as object) ?? {}), mailbox: view.username, access: view.access, tokenSourceId: view.tokenSourceId });
    return view;
  });

  doc.add('delete', `${base}/:id`, 'Delete a mail server and its tokens');
  app.delete<IdParams>(`${base}/:id`, guard, async (req, reply) => {
    await mr.servers.remove(req.params.id);
    await audited(req, mr, 'mail_server.deleted', { type: 'mail_server', id: req.params.id });
    return reply.code(204).send();
  });

  doc.add('post', `${base}/:id/test`, 'Test Connection: TLS, XOAUTH2 login, MAIL FROM and RCPT TO without sending');
  app.post<IdParams>(`${base}/:id/test`, guard, async (req) => {
    const r = await mr.servers.test(req.params.id);
    await audited(req, mr, 'mail_server.tested', { type: 'mail_server', id: req.params.id }, { ok: r.ok, code: r.code });
    return r;
  });

  const sendTestBody = z.object({ to: z.string() });
  doc.add('post', `${base}/:id/send-test`, 'Send a real test email from the mailbox', sendTestBody);
  app.post<IdParams>(`${base}/:id/send-test`, guard, async (req) => {
    const r = await mr.servers.sendTest(req.params.id, req.body);
    await audited(req, mr, 'mail_server.test_email', { type: 'mail_server', id: req.params.id }, { ok: r.ok, code: r.code });
    return r;
  });
}
