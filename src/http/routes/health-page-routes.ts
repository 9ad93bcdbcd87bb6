import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Mailroom } from '../../mailroom.ts';
import { graphGateKey } from '../../graph/graph-sender.ts';
import { smtpGateKey } from '../../smtp/smtp-pool.ts';
import { requireAuth } from '../session-auth.ts';
import type { ApiDoc } from '../openapi.ts';

export function healthPageRoutes(app: FastifyInstance, mr: Mailroom, doc: ApiDoc): void {
  doc.add('get', '/api/v1/health/servers', 'Every mail server\'s state: token, client secret and certificate expiry, checklist, last error, sending against its limits; which instance fetches each mailbox, which instances have connections open to each outgoing server, and which instance answered');
  // outbox:read sees the outgoing servers, inbound:read the incoming ones; a server-limited key only
  // its own servers.
  app.get('/api/v1/health/servers', { onRequest: requireAuth('outbox:read', 'inbound:read') }, async (req) => {
    const [allOutgoing, allIncoming, holders] = await Promise.all([mr.servers.list(), mr.incoming.list(), mr.connections.holders(mr.instance)]);
    const outgoing = allOutgoing.filter((s) => sees(req, 'outbox:read', s.id));
    const incoming = allIncoming.filter((s) => sees(req, 'inbound:read', s.id));
    // Connections and Graph requests are counted per mailbox (shared by its servers).
    const connections = (s: { smtpHost: string; username: string; sendUsing: string }) => holders.get(s.sendUsing === 'graph' ? graphGateKey(s.username) : smtpGateKey(s.smtpHost, s.username)) ?? {};
    return {
      // Several instances on one PostgreSQL: the one that answered, (fetchedBy) the one holding each
      // mailbox, and (connections) how many connections each instance has open to each outgoing server.
      instance: mr.instance,
      items: [
        ...outgoing.map((s) => ({ id: s.id, direction: 'outgoing' as const, name: s.name, username: s.username, tokenStatus: s.tokenStatus, tokenStatusReason: s.tokenStatusReason, clientSecretExpiry: s.clientSecretExpiry, certificateExpiry: s.certificateExpiry, checklist: s.checklist, lastError: s.lastError, sending: s.sending, connections: connections(s) })),
        ...incoming.map((s) => ({ id: s.id, direction: 'incoming' as const, name: s.name, username: s.username, tokenStatus: s.tokenStatus, tokenStatusReason: s.tokenStatusReason, clientSecretExpiry: null, certificateExpiry: s.certificateExpiry, checklist: s.checklist, lastError: s.lastError, sending: null, fetchedBy: s.fetchedBy, push: s.push })),
      ],
    };
  });

  doc.add('get', '/api/v1/audit-events', 'Who changed or connected what, newest first (query: limit, cursor, targetId)');
  app.get('/api/v1/audit-events', { onRequest: requireAuth('admin') }, async (req) => mr.audit.list(req.query));
}

function sees(req: FastifyRequest, scope: 'outbox:read' | 'inbound:read', serverId: string): boolean {
  const k = req.apiKey;
  if (!k || k.scopes.includes('admin')) return true;
  if (!k.scopes.includes(scope)) return false;
  const limit = scope === 'outbox:read' ? k.mailServerIds : k.incomingServerIds;
  return !limit || limit.includes(serverId);
}
