import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { MailroomError } from '../../errors/errors.ts';
import { parseInput } from '../../errors/parse-input.ts';
import type { Mailroom } from '../../mailroom.ts';
import { serverReportSettings, setServerReportSettings } from '../../storage/bounce-store.ts';
import { findMailServer } from '../../storage/mail-server-store.ts';
import { audited, requireAuth } from '../session-auth.ts';
import { watchMailboxSchema } from '../../bounces/watch-mailbox.ts';
import type { ApiDoc } from '../openapi.ts';

export const reportSettingsSchema = z.strictObject({
  suppressionPolicy: z.enum(['warn', 'refuse'], { error: 'suppressionPolicy must be warn (send with a warning) or refuse (answer 422)' }).optional(),
  deliverReports: z.boolean({ error: 'deliverReports must be true or false' }).optional(),
});

/**
 * Suppressions and delivery reports. Reading needs outbox:read (what was sent and how it fared);
 * lifting a suppression needs send: the ERP that sends is the one that learns a customer fixed their
 * mailbox, and it can already send to the address with a warning. Every lift is audited.
 */
export function bounceRoutes(app: FastifyInstance, mr: Mailroom, doc: ApiDoc): void {
  doc.add('get', '/api/v1/suppressions', 'Addresses that bounced hard (or softly 5 times in 13 weeks), with the bounce (query: q, limit, cursor)');
  app.get('/api/v1/suppressions', { onRequest: requireAuth('outbox:read') }, async (req) => mr.bounces.suppressions(req.query));

  doc.add('delete', '/api/v1/suppressions/:address', 'Lift a suppression: mail to the address goes out again (audited)');
  app.delete<{ Params: { address: string } }>('/api/v1/suppressions/:address', { onRequest: requireAuth('send') }, async (req, reply) => {
    const lifted = await mr.bounces.lift(req.params.address);
    await audited(req, mr, 'suppression.lifted', { type: 'suppression', id: lifted.address }, { reason: lifted.reason, status: lifted.status, outboxMessageId: lifted.outboxMessageId });
    return reply.code(204).send();
  });

  doc.add('get', '/api/v1/delivery-reports', 'Recognised bounces, delay reports, auto-replies and read receipts, newest first (query: unmatched=true, limit, cursor)');
  app.get('/api/v1/delivery-reports', { onRequest: requireAuth('outbox:read') }, async (req) => mr.bounces.list(req.query));

  doc.add('post', '/api/v1/mail-servers/:id/watch', 'Watch this mailbox for bounces and replies: an incoming server on the outgoing server\'s mailbox, reusing its connection (201; 200 with the existing one)', watchMailboxSchema);
  app.post<{ Params: { id: string } }>('/api/v1/mail-servers/:id/watch', { onRequest: requireAuth('admin') }, async (req, reply) => {
    const r = await mr.bounces.watch(req.params.id, req.body);
    if (r.created) await audited(req, mr, 'mail_server.watched', { type: 'mail_server', id: req.params.id }, { incomingServerId: r.incomingServer.id });
    return reply.code(r.created ? 201 : 200).send(r.incomingServer);
  });

  doc.add('get', '/api/v1/mail-servers/:id/report-settings', 'The server\'s suppressionPolicy (outgoing) and deliverReports (incoming)');
  app.get<{ Params: { id: string } }>('/api/v1/mail-servers/:id/report-settings', { onRequest: requireAuth('admin') }, async (req) => {
    if (!(await findMailServer(mr.database.db, req.params.id))) throw new MailroomError('MR_NOT_FOUND', `Mail server ${req.params.id} does not exist.`);
    return serverReportSettings(mr.database.db, req.params.id);
  });

  doc.add('patch', '/api/v1/mail-servers/:id/report-settings', 'Outgoing: suppressionPolicy warn|refuse; incoming: deliverReports (hand reports to the ERP as new mail too)', reportSettingsSchema);
  app.patch<{ Params: { id: string } }>('/api/v1/mail-servers/:id/report-settings', { onRequest: requireAuth('admin') }, async (req) => {
    const input = parseInput(reportSettingsSchema, req.body);
    if (!(await findMailServer(mr.database.db, req.params.id))) throw new MailroomError('MR_NOT_FOUND', `Mail server ${req.params.id} does not exist.`);
    await setServerReportSettings(mr.database.db, req.params.id, input);
    await audited(req, mr, 'mail_server.report_settings', { type: 'mail_server', id: req.params.id }, input);
    return serverReportSettings(mr.database.db, req.params.id);
  });
}
