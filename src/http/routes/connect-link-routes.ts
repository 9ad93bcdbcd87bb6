import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Mailroom } from '../../mailroom.ts';
import { type ConnectOutcome, createConnectLinkSchema, createMailboxSchema } from '../../connect/connect-link-service.ts';
import { connectPageHeaders, renderConnectPage } from '../../connect/connect-page.ts';
import type { ApiDoc } from '../openapi.ts';
import { actorOf, audited, requireAuth } from '../session-auth.ts';

type TokenParams = { Params: { token: string } };

/** A page with its own headers, or a 303 (the sign-in, or the return URL with the signed result). */
export function sendConnectOutcome(reply: FastifyReply, outcome: ConnectOutcome) {
  if (outcome.kind === 'redirect') return reply.code(303).headers({ 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' }).redirect(outcome.url, 303);
  const nonce = randomBytes(16).toString('base64');
  return reply.code(outcome.status).headers(connectPageHeaders(outcome, nonce)).type('text/html; charset=utf-8').send(renderConnectPage(outcome, nonce));
}

export function connectLinkRoutes(app: FastifyInstance, mr: Mailroom, doc: ApiDoc): void {
  doc.add('post', '/api/v1/connect-links', 'A single-use link for one of your users to connect their own Outlook or Gmail mailbox (or, with purpose "disconnect", to remove it); answers { id, url, expiresAt }', createConnectLinkSchema);
  app.post('/api/v1/connect-links', { onRequest: requireAuth('connect') }, async (req, reply) => {
    const link = await mr.connectLinks.create(req.body, actorOf(req));
    const body = (req.body ?? {}) as { owner?: string; templateServerId?: string; purpose?: string };
    await audited(req, mr, 'connect_link.created', { type: 'connect_link', id: link.id }, { owner: body.owner, templateServerId: body.templateServerId, purpose: body.purpose ?? 'connect' });
    return reply.code(201).send(link);
  });

  doc.add('post', '/api/v1/mailboxes', 'Add an owner\'s mailbox without sign-in, reusing a template with application access (client credentials); answers { owner, mailbox, serverId, incomingServerId }', createMailboxSchema);
  app.post('/api/v1/mailboxes', { onRequest: requireAuth('connect') }, async (req, reply) => {
    const r = await mr.connectLinks.addApplicationMailbox(req.body);
    await audited(req, mr, 'mailbox.added', { type: 'owner', id: r.owner }, { mailbox: r.mailbox, serverId: r.serverId, incomingServerId: r.incomingServerId });
    return reply.code(201).send(r);
  });

  // The public side: no Mailroom account; the token in the path is the only credential.
  app.get<TokenParams>('/connect/:token', async (req, reply) => sendConnectOutcome(reply, await mr.connectLinks.page(req.params.token)));
  app.post<TokenParams>('/connect/:token/start', async (req, reply) => sendConnectOutcome(reply, await mr.connectLinks.start(req.params.token)));
  app.post<TokenParams>('/connect/:token/disconnect', async (req, reply) => {
    const outcome = await mr.connectLinks.disconnect(req.params.token);
    if (outcome.kind === 'redirect' && outcome.result) await mr.audit.record('connect_link', 'connect_link.disconnected', { type: 'owner', id: outcome.result.owner });
    return sendConnectOutcome(reply, outcome);
  });
}
