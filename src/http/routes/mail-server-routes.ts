import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Mailroom } from '../../mailroom.ts';
import { createMailServerSchema, updateMailServerSchema } from '../../servers/mail-server-input.ts';
import { isMailroomError } from '../../errors/errors.ts';
import { parseInput } from '../../errors/parse-input.ts';
import { audited, requireAdmin, requireAuth } from '../session-auth.ts';
import type { ApiDoc } from '../openapi.ts';

type IdParams = { Params: { id: string } };

export function mailServerRoutes(app: FastifyInstance, mr: Mailroom, doc: ApiDoc): void {
  const base = '/api/v1/mail-servers';
  const guard = { onRequest: requireAuth('admin') };

  doc.add('get', `${base}/defaults`, 'Defaults for a new mail server, with this installation\'s OAuth2 redirect URL');
  app.get(`${base}/defaults`, guard, async () => mr.servers.defaults());

  doc.add('get', base, 'List outgoing mail servers (query: owner, shared=true, state, q, limit, cursor); answers items, nextCursor, total');
  app.get(base, guard, async (req) => mr.servers.page(req.query));

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

  const bulkBody = z.strictObject({
    action: z.enum(['test', 'disconnect', 'delete'], { error: 'action is test, disconnect or delete' }),
    ids: z.array(z.string().min(1).max(100), { error: 'ids is a list of mail server ids' }).min(1, { error: 'Name at least one server' }).max(200, { error: 'At most 200 servers at once' }),
  });
  doc.add('post', `${base}/bulk`, 'Test, disconnect or delete several mail servers; answers one result per id (a delete says whether the grant was revoked at the provider)', bulkBody);
  app.post(`${base}/bulk`, guard, async (req) => {
    const { action, ids } = parseInput(bulkBody, req.body);
    const results = [];
    for (const id of [...new Set(ids)]) {
      try {
        if (action === 'test') {
          const r = await mr.servers.test(id);
          results.push({ id, ok: r.ok, message: r.message, ...(r.code !== undefined && { code: r.code }) });
        } else if (action === 'disconnect') {
          await mr.servers.disconnect(id);
          results.push({ id, ok: true, message: 'Disconnected: the tokens are forgotten.' });
        } else {
          const r = await mr.servers.remove(id);
          results.push({ id, ok: true, message: 'Deleted.', ...r });
        }
        await audited(req, mr, `mail_server.bulk_${action}`, { type: 'mail_server', id });
      } catch (e) {
        if (!isMailroomError(e)) throw e;
        results.push({ id, ok: false, code: e.code, message: e.message });
      }
    }
    return { results };
  });

  doc.add('delete', `${base}/:id`, 'Delete a mail server and its tokens');
  app.delete<IdParams>(`${base}/:id`, guard, async (req, reply) => {
    await mr.servers.remove(req.params.id);
    await audited(req, mr, 'mail_server.deleted', { type: 'mail_server', id: req.params.id });
    return reply.code(204).send();
  });

  doc.add('post', `${base}/:id/connect`, 'Start "Connect your Outlook account" (returns the Microsoft sign-in URL); with Access: Application, "Check application access" (a client-credentials token now: { status, roles })');
  // A browser sign-in bound to the admin who starts it: sessions only.
  app.post<IdParams>(`${base}/:id/connect`, { onRequest: requireAdmin }, async (req) => {
    const server = await mr.servers.get(req.params.id);
    if (server.access === 'application') {
      const r = await mr.servers.checkApplicationAccess(req.params.id);
      await audited(req, mr, 'oauth.application_checked', { type: 'mail_server', id: req.params.id }, { mailbox: server.username, roles: r.roles.join(' ') });
      return r;
    }
    const r = await mr.connect.start(req.params.id, req.admin!.id);
    await audited(req, mr, 'oauth.started', { type: 'mail_server', id: req.params.id });
    return r;
  });

  doc.add('get', `${base}/:id/admin-consent-url`, 'Microsoft\'s admin consent page for this app and tenant (Access: Application)');
  app.get<IdParams>(`${base}/:id/admin-consent-url`, guard, async (req) => mr.servers.adminConsentUrl(req.params.id));
  doc.add('get', `${base}/:id/application-guide`, 'The guide\'s Application access steps filled in with this server\'s app, tenant, mailbox and PowerShell commands (Access: Application)');
  app.get<IdParams>(`${base}/:id/application-guide`, guard, async (req) => mr.servers.applicationGuide(req.params.id));

  doc.add('post', `${base}/:id/disconnect`, 'Disconnect: forget this server\'s tokens');
  app.post<IdParams>(`${base}/:id/disconnect`, guard, async (req) => {
    const v = await mr.servers.disconnect(req.params.id);
    await audited(req, mr, 'oauth.disconnected', { type: 'mail_server', id: req.params.id });
    return v;
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
