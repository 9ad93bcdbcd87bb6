import type { FastifyInstance } from 'fastify';
import { quietLevel } from '../../logger.ts';
import type { Mailroom } from '../../mailroom.ts';
import { sendMessageSchema } from '../../outbox/message-input.ts';
import { actorOf, outboxActAccess, outboxReadAccess, requireAuth } from '../session-auth.ts';
import type { ApiDoc } from '../openapi.ts';

type IdParams = { Params: { id: string } };

export function messageRoutes(app: FastifyInstance, mr: Mailroom, doc: ApiDoc): void {
  const base = '/api/v1/messages';
  // Base64 grows attachments by a third; leave room for the JSON around them.
  const bodyLimit = Math.ceil(mr.config.outbox.maxMessageBytes * 1.37) + 1024 * 1024;

  doc.add('post', base, 'Queue a message for delivery (202). Idempotency-Key header: the same key and body return the same message', sendMessageSchema);
  // The hot path: the per-request access lines go to debug; the queued line below says what happened.
  const hotLevel = quietLevel(mr.config.logLevel) as 'warn';
  app.post(base, { onRequest: requireAuth('send'), bodyLimit, logLevel: hotLevel }, async (req, reply) => {
    const key = req.headers['idempotency-key'];
    const { message, created } = await mr.outbox.enqueue(req.body, {
      ...(typeof key === 'string' && { idempotencyKey: key }),
      apiKeyId: req.apiKey?.id ?? null,
      mailServerIds: req.apiKey?.mailServerIds ?? null,
    });
    if (created) mr.logger.info({ event: 'outbox.queued', reqId: req.id, messageId: message.id, mailServerId: message.mailServerId, actor: actorOf(req) }, 'message queued');
    return reply.code(202).header('location', `${base}/${message.id}`).send(message);
  });

  // A send key sees the messages it queued (404 for others', as if they did not exist); outbox:read
  // sees every message (of its servers, when the key is limited to some).
  doc.add('get', base, 'List messages, newest first (query: state, mailServerId, q, limit, cursor); a send key lists the ones it queued');
  app.get(base, { onRequest: requireAuth('send', 'outbox:read') }, async (req) => mr.outbox.list(req.query, outboxReadAccess(req)));

  doc.add('get', `${base}/:id`, 'One message: state, attempts, last error with the server\'s reply, Message-ID; recipients[] with each one\'s outcome after the 250 and the reports about it');
  app.get<IdParams>(`${base}/:id`, { onRequest: requireAuth('send', 'outbox:read') }, async (req) => {
    const m = await mr.outbox.get(req.params.id, outboxReadAccess(req));
    return { ...m, reports: await mr.bounces.forMessage(m.id) };
  });

  doc.add('post', `${base}/:id/retry`, 'Queue a failed, held or cancelled message again');
  app.post<IdParams>(`${base}/:id/retry`, { onRequest: requireAuth('send') }, async (req) => {
    const m = await mr.outbox.retry(req.params.id, outboxReadAccess(req), outboxActAccess(req));
    req.log.info({ event: 'outbox.retry_requested', messageId: m.id, actor: actorOf(req) }, 'message retry requested');
    return m;
  });

  doc.add('post', `${base}/:id/cancel`, 'Cancel a queued, held or failed message');
  app.post<IdParams>(`${base}/:id/cancel`, { onRequest: requireAuth('send') }, async (req) => {
    const m = await mr.outbox.cancel(req.params.id, outboxReadAccess(req), outboxActAccess(req));
    req.log.info({ event: 'outbox.cancelled', messageId: m.id, actor: actorOf(req) }, 'message cancelled');
    return m;
  });
}
