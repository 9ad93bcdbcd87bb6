import { z } from 'zod';
import type { AuditLog } from '../audit/audit-log.ts';
import { MailroomError, validationError } from '../errors/errors.ts';
import { parseInput } from '../errors/parse-input.ts';
import type { Logger } from '../logger.ts';
import type { Sealer } from '../secrets/sealer.ts';
import type { Db } from '../storage/database.ts';
import {
  dismissMailServerNotice,
  findMailServer,
  type MailServerRecord,
  promotePendingCertificate,
  replaceCertificate,
  setFirstCertificate,
  setPendingCertificate,
  type StoredCertificate,
} from '../storage/mail-server-store.ts';
import { certificateDer, type CertificateWithKey, generateCertificate, importCertificate, MAX_PEM_CHARS, MAX_PFX_BASE64_CHARS, MAX_PFX_PASSWORD_CHARS } from './client-certificate.ts';
import { oauthProviderOf } from './oauth-providers.ts';
import { certificateKeyAad } from './server-credential.ts';

/** What the API and UI see of a certificate: its names and dates, never its private key. */
export interface CertificateFactsView {
  thumbprint: string;
  thumbprintSha256: string;
  subject: string;
  notBefore: string;
  notAfter: string;
}

export interface CertificateView extends CertificateFactsView {
  source: 'generated' | 'imported';
  pending: (CertificateFactsView & { createdAt: string }) | null;
}

const facts = (c: StoredCertificate): CertificateFactsView => ({ thumbprint: c.thumbprint, thumbprintSha256: c.thumbprintSha256, subject: c.subject, notBefore: c.notBefore, notAfter: c.notAfter });

/** The server read model's `certificate`: null without one. */
export function certificateView(s: Pick<MailServerRecord, 'certificate' | 'pendingCertificate'>): CertificateView | null {
  if (!s.certificate) return null;
  return { ...facts(s.certificate), source: s.certificate.source, pending: s.pendingCertificate ? { ...facts(s.pendingCertificate), createdAt: s.pendingCertificate.createdAt } : null };
}

/** An upload as JSON: a PEM pair, or a PFX in base64 with its password. Sizes are bounded before parsing. */
export const certificateImportSchema = z.union([
  z.strictObject({
    certificatePem: z.string({ error: 'Paste the certificate (PEM)' }).max(MAX_PEM_CHARS, { error: `At most ${MAX_PEM_CHARS / 1024} KB` }),
    privateKeyPem: z.string({ error: 'Paste the private key (PEM)' }).max(MAX_PEM_CHARS, { error: `At most ${MAX_PEM_CHARS / 1024} KB` }),
  }),
  z.strictObject({
    pfxBase64: z.string({ error: 'Upload the PFX file (base64)' }).max(MAX_PFX_BASE64_CHARS, { error: `At most ${(MAX_PFX_BASE64_CHARS * 3) / 4 / 1024} KB` }),
    pfxPassword: z.string().max(MAX_PFX_PASSWORD_CHARS, { error: 'The PFX password is too long' }).optional(),
  }),
]);

/** The largest JSON body an import route accepts: the PFX bound plus room for the password and quoting. */
export const CERTIFICATE_IMPORT_BODY_LIMIT = MAX_PFX_BASE64_CHARS + 16 * 1024;

function importInput(body: unknown) {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  if (!('pfxBase64' in b) && !('certificatePem' in b) && !('privateKeyPem' in b)) {
    throw validationError({ certificatePem: 'Send certificatePem and privateKeyPem, or pfxBase64 (and pfxPassword)' });
  }
  // The union's own message names no field: parse the branch the body chose, so the answer names it.
  const branch = 'pfxBase64' in b ? certificateImportSchema.options[1] : certificateImportSchema.options[0];
  return parseInput(branch, body);
}

/**
 * Client certificates of OAuth servers (outgoing and incoming alike): generate, import, download,
 * roll, and the promotion of a rolled certificate once a token request has proven it.
 */
export class CertificateService {
  constructor(private readonly deps: { db: Db; sealer: Sealer; audit: AuditLog; logger?: Logger; now?: () => Date }) {}

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  /** The server behind a route of `direction` (404 for one of the other kind). */
  async record(id: string, direction: 'outgoing' | 'incoming'): Promise<MailServerRecord> {
    const s = await findMailServer(this.deps.db, id);
    if (!s || s.direction !== direction) throw new MailroomError('MR_NOT_FOUND', `${direction === 'incoming' ? 'Incoming mail server' : 'Mail server'} ${id} does not exist.`);
    return s;
  }

  private stored(serverId: string, c: CertificateWithKey, source: StoredCertificate['source']): StoredCertificate {
    return {
      thumbprint: c.thumbprint,
      thumbprintSha256: c.thumbprintSha256,
      subject: c.subject,
      notBefore: c.notBefore,
      notAfter: c.notAfter,
      source,
      createdAt: this.now().toISOString(),
      certificatePem: c.certificatePem,
      privateKeySealed: this.deps.sealer.seal(c.privateKeyPem, certificateKeyAad(serverId, c.thumbprintSha256)),
    };
  }

  private requireCertificates(s: MailServerRecord): void {
    const provider = oauthProviderOf(s);
    if (s.tokenSourceId) {
      throw new MailroomError('MR_VALIDATION', 'This server uses another server\'s connection: its certificate is that server\'s.', { field: 'tokenSourceId', fields: { tokenSourceId: 'Manage the certificate on the server whose connection this one uses' } });
    }
    if (!provider?.certificates) {
      const message = `Certificates work only with Outlook OAuth Authentication`;
      throw new MailroomError('MR_VALIDATION', message, { field: 'authType', fields: { authType: message } });
    }
  }

  /** "in use": the server signs its token requests with it, so replacing it could stop mail. */
  private inUse(s: MailServerRecord): boolean {
    return s.clientCredential === 'certificate' && s.certificate !== null;
  }

  /**
   * Generate certificate: a new key and self-signed certificate. Refused with MR_CERTIFICATE_EXISTS
   * while one is in use (Roll certificate replaces it without an interruption); a certificate not in
   * use (the server still authenticates with its secret) is simply replaced.
   */
  async generate(s: MailServerRecord): Promise<StoredCertificate> {
    this.requireCertificates(s);
    if (this.inUse(s)) throw this.exists(s);
    const cert = this.stored(s.id, generateCertificate({ name: s.name, now: this.now() }), 'generated');
    if (s.certificate) await replaceCertificate(this.deps.db, s.id, cert, this.now());
    else if (!(await setFirstCertificate(this.deps.db, s.id, cert, this.now()))) throw this.exists(s);
    return cert;
  }

  private exists(s: MailServerRecord): MailroomError {
    return new MailroomError('MR_CERTIFICATE_EXISTS', `"${s.name}" already signs its token requests with a certificate.`, {
      field: 'certificate',
      fix: 'Use Roll certificate: the new certificate is used once it is proven, and the current one keeps working until then.',
    });
  }

  /**
   * Import an existing certificate and key. On a server whose certificate is in use it becomes the
   * pending one (as a roll), used once a token request proves it; otherwise it is the certificate.
   */
  async import(s: MailServerRecord, body: unknown): Promise<{ cert: StoredCertificate; pending: boolean }> {
    this.requireCertificates(s);
    const input = importInput(body);
    const cert = this.stored(s.id, importCertificate(input, this.now()), 'imported');
    if (this.inUse(s)) {
      await setPendingCertificate(this.deps.db, s.id, cert, this.now());
      return { cert, pending: true };
    }
    await replaceCertificate(this.deps.db, s.id, cert, this.now());
    return { cert, pending: false };
  }

  /** Roll certificate: a new pending certificate; the current one stays in use until the new one is proven. */
  async roll(s: MailServerRecord): Promise<StoredCertificate> {
    this.requireCertificates(s);
    if (!s.certificate) {
      throw new MailroomError('MR_VALIDATION', 'This server has no certificate to roll yet.', { field: 'certificate', fields: { certificate: 'Click Generate certificate first' } });
    }
    const cert = this.stored(s.id, generateCertificate({ name: s.name, now: this.now() }), 'generated');
    if (!(await setPendingCertificate(this.deps.db, s.id, cert, this.now()))) throw new MailroomError('MR_CONFLICT', 'The certificate was removed meanwhile; generate one.');
    return cert;
  }

  /**
   * "I deleted it in Azure": the notice of a promoted roll is taken down. Only that notice, and only if
   * it is still the one stored; anything else on the server is left as it is.
   */
  async dismissRolled(s: MailServerRecord): Promise<boolean> {
    if (s.lastError?.code !== 'CERTIFICATE_ROLLED') return false;
    return dismissMailServerNotice(this.deps.db, s.id, s.lastError);
  }

  /** The public certificate (current or pending) as PEM or DER, with the file name the browser saves it under. */
  download(s: MailServerRecord, which: 'current' | 'pending', format: 'pem' | 'cer'): { body: Buffer | string; contentType: string; filename: string } {
    const c = which === 'pending' ? s.pendingCertificate : s.certificate;
    if (!c) throw new MailroomError('MR_NOT_FOUND', which === 'pending' ? 'This server has no pending certificate.' : 'This server has no certificate yet.', { fix: 'Click Generate certificate first.' });
    const name = s.name.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60) || 'mail-server';
    return format === 'pem'
      ? { body: c.certificatePem, contentType: 'application/x-pem-file', filename: `${name}-${c.thumbprint}.pem` }
      : { body: certificateDer(c.certificatePem), contentType: 'application/pkix-cert', filename: `${name}-${c.thumbprint}.cer` };
  }

  /**
   * A token request signed with the pending certificate succeeded: it becomes current and the old one
   * is dropped (one conditional UPDATE; of several instances exactly one does it), the admin is told
   * to delete the old thumbprint in Azure, and the audit log records it.
   */
  async promote(serverId: string, thumbprintSha256: string): Promise<boolean> {
    const { db } = this.deps;
    const now = this.now();
    const done = await promotePendingCertificate(db, serverId, thumbprintSha256, now, (current, old) =>
      old
        ? {
            code: 'CERTIFICATE_ROLLED',
            // About a connection that works: no success clears it, only the admin once it is done (dismissRolled).
            severity: 'notice' as const,
            message: `The new certificate (thumbprint ${current.thumbprint}) proved itself with Microsoft and is now in use; Mailroom has dropped the old one (thumbprint ${old.thumbprint}).`,
            fix: `Delete the old certificate in Azure portal › Microsoft Entra ID › App registrations › your app › Certificates & secrets › Certificates: the one with thumbprint ${old.thumbprint}.`,
            at: now.toISOString(),
          }
        : null,
    );
    if (!done) return false;
    const current = done.current;
    const old = done.dropped;
    await this.deps.audit.record('system', 'certificate.promoted', { type: 'mail_server', id: serverId }, { thumbprint: current.thumbprint, droppedThumbprint: old?.thumbprint ?? null });
    this.deps.logger?.info({ event: 'certificate.promoted', mailServerId: serverId, thumbprint: current.thumbprint, droppedThumbprint: old?.thumbprint }, 'rolled certificate proven and in use');
    return true;
  }
}
