import type { FastifyInstance } from 'fastify';
import { createApiKeySchema } from '../../apikeys/api-key-service.ts';
import type { Mailroom } from '../../mailroom.ts';
import { audited, requireAuth } from '../session-auth.ts';
import type { ApiDoc } from '../openapi.ts';

export function apiKeyRoutes(app: FastifyInstance, mr: Mailroom, doc: ApiDoc): void {
  const base = '/api/v1/api-keys';
  const guard = { onRequest: requireAuth('admin') };

  doc.add('get', base, 'List API keys (never the keys themselves)');
  app.get(base, guard, async () => ({ items: await mr.apiKeys.list() }));

  doc.add('post', base, 'Create an API key with scopes (send, outbox:read, inbound:read, connect, admin) and optional server limits; the key is in this response only', createApiKeySchema);
  app.post(base, guard, async (req, reply) => {
    const created = await mr.apiKeys.create(req.body, req.admin?.id ?? null);
    await audited(req, mr, 'apikey.created', { type: 'api_key', id: created.id }, { name: created.name, scopes: created.scopes, mailServerIds: created.mailServerIds, incomingServerIds: created.incomingServerIds });
    return reply.code(201).send(created);
  });

  doc.add('delete', `${base}/:id`, 'Revoke an API key');
  app.delete<{ Params: { id: string } }>(`${base}/:id`, guard, async (req, reply) => {
    await mr.apiKeys.revoke(req.params.id);
    await audited(req, mr, 'apikey.revoked', { type: 'api_key', id: req.params.id });
    return reply.code(204).send();
  });
}
