import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Mailroom } from '../../mailroom.ts';
import { CERTIFICATE_IMPORT_BODY_LIMIT, certificateImportSchema } from '../../oauth/certificate-service.ts';
import { parseInput, queryText } from '../../errors/parse-input.ts';
import { audited, requireAuth } from '../session-auth.ts';
import type { ApiDoc } from '../openapi.ts';

type IdParams = { Params: { id: string } };

const empty = z.strictObject({});
const downloadQuery = z.strictObject({ which: queryText('which').pipe(z.enum(['current', 'pending'], { error: 'which must be current or pending' })).optional() });

/**
 * Generate, import, download and roll the client certificate of an Outlook OAuth server, the same
 * under /api/v1/mail-servers and /api/v1/incoming-servers. Never answers a private key.
 */
export function certificateRoutes(app: FastifyInstance, mr: Mailroom, doc: ApiDoc, direction: 'outgoing' | 'incoming'): void {
  const base = direction === 'outgoing' ? '/api/v1/mail-servers' : '/api/v1/incoming-servers';
  const guard = { onRequest: requireAuth('admin') };
  const target = (id: string) => ({ type: 'mail_server', id });
  const answer = (id: string) => (direction === 'outgoing' ? mr.servers.get(id) : mr.incoming.get(id));

  doc.add('post', `${base}/:id/certificate`, 'Generate certificate: a new RSA key (sealed, never returned) and a self-signed certificate valid two years', empty);
  app.post<IdParams>(`${base}/:id/certificate`, guard, async (req) => {
    parseInput(empty, req.body ?? {});
    const s = await mr.certificates.record(req.params.id, direction);
    const c = await mr.certificates.generate(s);
    await audited(req, mr, 'certificate.generated', target(s.id), { thumbprint: c.thumbprint, notAfter: c.notAfter });
    return answer(s.id);
  });

  doc.add('post', `${base}/:id/certificate/import`, 'Import a certificate and its RSA key: PEM pair, or PFX (base64) with its password', certificateImportSchema);
  app.post<IdParams>(`${base}/:id/certificate/import`, { ...guard, bodyLimit: CERTIFICATE_IMPORT_BODY_LIMIT }, async (req) => {
    const s = await mr.certificates.record(req.params.id, direction);
    const r = await mr.certificates.import(s, req.body);
    await audited(req, mr, 'certificate.imported', target(s.id), { thumbprint: r.cert.thumbprint, notAfter: r.cert.notAfter, pending: r.pending });
    return answer(s.id);
  });

  doc.add('post', `${base}/:id/certificate/roll`, 'Roll certificate: a new pending certificate, used once a token request proves it; the current one works until then', empty);
  app.post<IdParams>(`${base}/:id/certificate/roll`, guard, async (req) => {
    parseInput(empty, req.body ?? {});
    const s = await mr.certificates.record(req.params.id, direction);
    const c = await mr.certificates.roll(s);
    await audited(req, mr, 'certificate.rolled', target(s.id), { pendingThumbprint: c.thumbprint, currentThumbprint: s.certificate?.thumbprint });
    return answer(s.id);
  });

  doc.add('post', `${base}/:id/certificate/dismiss-rolled`, 'The old certificate of a promoted roll is deleted in Azure: takes down the notice that asked for it', empty);
  app.post<IdParams>(`${base}/:id/certificate/dismiss-rolled`, guard, async (req) => {
    parseInput(empty, req.body ?? {});
    const s = await mr.certificates.record(req.params.id, direction);
    if (await mr.certificates.dismissRolled(s)) await audited(req, mr, 'certificate.rolled_notice_dismissed', target(s.id), { thumbprint: s.certificate?.thumbprint });
    return answer(s.id);
  });

  for (const format of ['pem', 'cer'] as const) {
    doc.add('get', `${base}/:id/certificate.${format}`, `Download certificate (${format === 'pem' ? 'PEM' : 'DER'}); ?which=pending for the rolled one`);
    app.get<IdParams>(`${base}/:id/certificate.${format}`, guard, async (req, reply) => {
      const { which } = parseInput(downloadQuery, req.query);
      const s = await mr.certificates.record(req.params.id, direction);
      const file = mr.certificates.download(s, which ?? 'current', format);
      await audited(req, mr, 'certificate.downloaded', target(s.id), { which: which ?? 'current', format });
      return reply.type(file.contentType).header('content-disposition', `attachment; filename="${file.filename}"`).send(file.body);
    });
  }
}
