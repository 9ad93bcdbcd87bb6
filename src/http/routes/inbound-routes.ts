import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { parseInput, queryText } from '../../errors/parse-input.ts';
import { createIncomingSchema, updateIncomingSchema } from '../../inbound/incoming-server-input.ts';
import { createWebhookSchema, updateWebhookSchema } from '../../inbound/webhook-service.ts';
import type { Mailroom } from '../../mailroom.ts';
import { audited, inboundServerIds, requireAuth } from '../session-auth.ts';
import type { ApiDoc } from '../openapi.ts';

type IdParams = { Params: { id: string } };

export function inboundRoutes(app: FastifyInstance, mr: Mailroom, doc: ApiDoc): void {
  const admin = { onRequest: requireAuth('admin') };
  const read = { onRequest: requireAuth('inbound:read') };
  const servers = '/api/v1/incoming-servers';

  doc.add('get', `${servers}/defaults`, 'Defaults for a new incoming mail server');
  app.get(`${servers}/defaults`, admin, async () => mr.incoming.defaults());

  doc.add('get', `${servers}/reusable-connections`, 'Connected outgoing servers for a mailbox (query: username): one consent covers IMAP and SMTP');
  const reusableQuery = z.object({ username: queryText('username', 320).default('') });
  app.get(`${servers}/reusable-connections`, admin, async (req) => ({ items: await mr.incoming.reusableConnections(parseInput(reusableQuery, req.query).username) }));

  doc.add('get', servers, 'List incoming mail servers (query: owner, shared=true, state, q, limit, cursor); answers items, nextCursor, total');
  app.get(servers, admin, async (req) => mr.incoming.page(req.query));

  doc.add('post', servers, 'Create an incoming mail server (IMAP, Outlook OAuth)', createIncomingSchema);
  app.post(servers, admin, async (req, reply) => {
    const v = await mr.incoming.create(req.body);
    await audited(req, mr, 'incoming_server.created', { type: 'mail_server', id: v.id }, { name: v.name, username: v.username, mailbox: v.username, access: v.access, tokenSourceId: v.tokenSourceId });
    return reply.code(201).send(v);
  });

  doc.add('get', `${servers}/:id`, 'One incoming mail server with its fetch progress');
  app.get<IdParams>(`${servers}/:id`, admin, async (req) => mr.incoming.get(req.params.id));

  doc.add('patch', `${servers}/:id`, 'Change an incoming mail server', updateIncomingSchema);
  app.patch<IdParams>(`${servers}/:id`, admin, async (req) => {
    const v = await mr.incoming.update(req.params.id, req.body);
    await audited(req, mr, 'incoming_server.updated', { type: 'mail_server', id: v.id }, { fields: Object.keys((req.body as object) ?? {}), mailbox: v.username, access: v.access, tokenSourceId: v.tokenSourceId });
    return v;
  });

  doc.add('delete', `${servers}/:id`, 'Delete an incoming mail server and its imported messages');
  app.delete<IdParams>(`${servers}/:id`, admin, async (req, reply) => {
    await mr.incoming.remove(req.params.id);
    await audited(req, mr, 'incoming_server.deleted', { type: 'mail_server', id: req.params.id });
    return reply.code(204).send();
  });

  doc.add('post', `${servers}/:id/test`, 'Test & Confirm: XOAUTH2 login, open the folder, count its messages');
  app.post<IdParams>(`${servers}/:id/test`, admin, async (req) => mr.incoming.test(req.params.id));

  doc.add('post', `${servers}/:id/fetch`, 'Fetch Now: start fetching new mail; follow progress on the server');
  app.post<IdParams>(`${servers}/:id/fetch`, admin, async (req, reply) => {
    await mr.incoming.fetchNow(req.params.id);
    return reply.code(202).send({ started: true });
  });

  const messages = '/api/v1/inbound-messages';
  doc.add('get', messages, 'Pull imported messages: ascending from `after` (the last nextCursor), or order=desc for the newest first');
  app.get(messages, read, async (req) => mr.inbound.list(req.query, inboundServerIds(req)));

  doc.add('get', `${messages}/:id`, 'One imported message with its parsed fields, bodies and webhook deliveries');
  app.get<IdParams>(`${messages}/:id`, read, async (req) => mr.inbound.get(req.params.id, inboundServerIds(req)));

  doc.add('get', `${messages}/:id/raw`, 'The message exactly as fetched (message/rfc822)');
  app.get<IdParams>(`${messages}/:id/raw`, read, async (req, reply) => {
    const r = await mr.inbound.raw(req.params.id, inboundServerIds(req));
    return reply.type('message/rfc822').header('content-length', r.size).header('content-disposition', `inline; filename="${r.filename}"`).send(r.stream);
  });

  doc.add('get', `${messages}/:id/attachments/:index`, 'One attachment of an imported message (index from 0, as listed in attachments), always as a download');
  app.get<{ Params: { id: string; index: string } }>(`${messages}/:id/attachments/:index`, read, async (req, reply) => {
    const a = await mr.inbound.attachment(req.params.id, req.params.index, inboundServerIds(req));
    // Served as a download of opaque bytes, never rendered: a received HTML or SVG file runs no script here.
    return reply
      .type('application/octet-stream')
      .header('x-content-type-options', 'nosniff')
      .header('content-disposition', attachmentDisposition(a.filename))
      .send(a.stream);
  });

  const hooks = '/api/v1/webhooks';
  doc.add('get', hooks, 'List webhooks');
  app.get(hooks, admin, async () => ({ items: await mr.webhooks.list() }));

  doc.add('post', hooks, 'Add a webhook; the signing secret is in this response only', createWebhookSchema);
  app.post(hooks, admin, async (req, reply) => {
    const w = await mr.webhooks.create(req.body);
    await audited(req, mr, 'webhook.created', { type: 'webhook', id: w.id }, { url: w.url });
    return reply.code(201).send(w);
  });

  doc.add('patch', `${hooks}/:id`, 'Change, enable or disable a webhook', updateWebhookSchema);
  app.patch<IdParams>(`${hooks}/:id`, admin, async (req) => mr.webhooks.update(req.params.id, req.body));

  doc.add('delete', `${hooks}/:id`, 'Delete a webhook');
  app.delete<IdParams>(`${hooks}/:id`, admin, async (req, reply) => {
    await mr.webhooks.remove(req.params.id);
    await audited(req, mr, 'webhook.deleted', { type: 'webhook', id: req.params.id });
    return reply.code(204).send();
  });

  doc.add('get', `${hooks}/:id/deliveries`, 'The delivery log of a webhook, newest first');
  app.get<IdParams>(`${hooks}/:id/deliveries`, admin, async (req) => mr.webhooks.deliveries(req.params.id, req.query));

  doc.add('post', '/api/v1/webhook-deliveries/:id/redeliver', 'Send a delivery again');
  app.post<IdParams>('/api/v1/webhook-deliveries/:id/redeliver', admin, async (req) => mr.webhooks.redeliver(req.params.id));
}

/** `attachment` with an ASCII fallback name and the exact one in RFC 5987 form (names are already safe: no quotes, no line breaks). */
export function attachmentDisposition(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`;
}
