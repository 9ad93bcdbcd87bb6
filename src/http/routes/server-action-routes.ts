import type { FastifyInstance } from 'fastify';
import type { Mailroom } from '../../mailroom.ts';
import { parseInput } from '../../errors/parse-input.ts';
import { BULK_CONCURRENCY, BULK_MAX_IDS, bulkServersSchema, runBulk, type BulkAction, type BulkOutcome } from '../../servers/bulk-servers.ts';
import type { GrantRevocation } from '../../servers/mail-server-service.ts';
import type { ApplicationAccessActions } from '../../servers/application-access.ts';
import { audited, requireAdmin, requireAuth } from '../session-auth.ts';
import type { ApiDoc } from '../openapi.ts';

type IdParams = { Params: { id: string } };

/** What both server services offer to these routes. */
interface ServerActions {
  get(id: string): Promise<{ access: string; username: string }>;
  test(id: string): Promise<{ ok: boolean; message: string; code?: string; fix?: string }>;
  disconnect(id: string): Promise<unknown>;
  disconnectGrant(id: string): Promise<GrantRevocation>;
  remove(id: string): Promise<GrantRevocation | void>;
  application: ApplicationAccessActions;
}

const revocationText = (g: GrantRevocation) => (g.grantRevoked ? ' The grant was revoked at the provider.' : g.note ? ` ${g.note}` : '');

/**
 * The routes an outgoing and an incoming server share, registered once per direction under
 * /api/v1/mail-servers and /api/v1/incoming-servers: connect (or Check application access), the admin
 * consent URL and guide of Access: Application, disconnect, and bulk test/disconnect/delete.
 */
export function serverActionRoutes(app: FastifyInstance, mr: Mailroom, doc: ApiDoc, direction: 'outgoing' | 'incoming'): void {
  const base = direction === 'outgoing' ? '/api/v1/mail-servers' : '/api/v1/incoming-servers';
  const service: ServerActions = direction === 'outgoing' ? mr.servers : mr.incoming;
  const auditPrefix = direction === 'outgoing' ? 'mail_server' : 'incoming_server';
  const guard = { onRequest: requireAuth('admin') };
  const target = (id: string) => ({ type: 'mail_server', id });

  doc.add('post', `${base}/:id/connect`, 'Start "Connect your Outlook account" (returns the sign-in URL); with Access: Application, "Check application access" (a client-credentials token now: { status, roles })');
  // A browser sign-in bound to the admin who starts it: sessions only.
  app.post<IdParams>(`${base}/:id/connect`, { onRequest: requireAdmin }, async (req) => {
    const server = await service.get(req.params.id);
    if (server.access === 'application') {
      const r = await service.application.check(req.params.id);
      await audited(req, mr, 'oauth.application_checked', target(req.params.id), { mailbox: server.username, roles: r.roles.join(' ') });
      return r;
    }
    const r = await mr.connect.start(req.params.id, req.admin!.id);
    await audited(req, mr, 'oauth.started', target(req.params.id));
    return r;
  });

  doc.add('get', `${base}/:id/admin-consent-url`, 'Microsoft\'s admin consent page for this app and tenant (Access: Application)');
  app.get<IdParams>(`${base}/:id/admin-consent-url`, guard, async (req) => service.application.consentUrl(req.params.id));
  doc.add('get', `${base}/:id/application-guide`, 'The guide\'s Application access steps filled in with this server\'s app, tenant, mailbox and PowerShell commands (Access: Application)');
  app.get<IdParams>(`${base}/:id/application-guide`, guard, async (req) => service.application.guide(req.params.id));

  doc.add('post', `${base}/:id/disconnect`, 'Disconnect: revoke the grant at the provider where it can be, and forget this server\'s tokens');
  app.post<IdParams>(`${base}/:id/disconnect`, guard, async (req) => {
    const v = await service.disconnect(req.params.id);
    await audited(req, mr, 'oauth.disconnected', target(req.params.id));
    return v;
  });

  const run: Record<BulkAction, (id: string) => Promise<BulkOutcome>> = {
    test: async (id) => {
      const r = await service.test(id);
      return { ok: r.ok, code: r.ok ? null : (r.code ?? 'MR_INTERNAL'), message: r.message, ...(r.fix !== undefined && { fix: r.fix }) };
    },
    disconnect: async (id) => {
      const g = await service.disconnectGrant(id);
      return { ok: true, code: null, message: `Disconnected: the tokens are forgotten.${revocationText(g)}`, ...g };
    },
    delete: async (id) => {
      const g = (await service.remove(id)) ?? { grantRevoked: false, note: null };
      return { ok: true, code: null, message: `Deleted.${revocationText(g)}`, ...g };
    },
  };
  doc.add('post', `${base}/bulk`, `Test, disconnect or delete up to ${BULK_MAX_IDS} servers, ${BULK_CONCURRENCY} at a time; answers { results: [{ id, ok, code, message, fix?, grantRevoked?, note? }] } in the order asked`, bulkServersSchema);
  app.post(`${base}/bulk`, guard, async (req) => {
    const { action, ids } = parseInput(bulkServersSchema, req.body);
    const results = await runBulk(ids, run[action], { onUnexpected: (id, err) => req.log.error({ event: 'bulk.failed', action, serverId: id, err }, 'bulk action failed') });
    // One entry per server, its outcome included (a refused test is as much worth keeping as a passed one).
    for (const r of results) {
      if (r.code === 'MR_NOT_FOUND') continue;
      await audited(req, mr, `${auditPrefix}.bulk_${action}`, target(r.id), { ok: r.ok, ...(r.code && { code: r.code }), ...(r.grantRevoked !== undefined && { grantRevoked: r.grantRevoked }) });
    }
    return { results };
  });
}
