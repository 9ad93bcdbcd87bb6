import type { Config } from '../config/config.ts';
import { MailroomError } from '../errors/errors.ts';
import type { Sealer } from '../secrets/sealer.ts';
import type { MailServerRecord, StoredCertificate } from '../storage/mail-server-store.ts';
import type { AssertionKey, ClientCredential } from './client-auth.ts';
import { requireOAuthProvider } from './oauth-providers.ts';

export const secretAad = (serverId: string) => `mail_server:${serverId}:client_secret`;

/** A certificate's private key is bound to its server and to the certificate itself. */
export const certificateKeyAad = (serverId: string, thumbprintSha256: string) => `mail_server:${serverId}:certificate_key:${thumbprintSha256}`;

function assertionKey(serverId: string, cert: StoredCertificate, sealer: Sealer): AssertionKey {
  return {
    privateKeyPem: sealer.open(cert.privateKeySealed, certificateKeyAad(serverId, cert.thumbprintSha256)),
    thumbprint: cert.thumbprint,
    thumbprintSha256: cert.thumbprintSha256,
  };
}

/**
 * The server's Client Credential, opened for one token request: its client secret, or its
 * certificate (and the pending one of a roll). Fails naming the field the admin must fill in.
 */
export function credentialOf(
  server: Pick<MailServerRecord, 'id' | 'authType' | 'clientCredential' | 'clientSecretSealed' | 'certificate' | 'pendingCertificate'>,
  config: Pick<Config, 'microsoftAssertionAlg'>,
  sealer: Sealer,
): ClientCredential {
  const provider = requireOAuthProvider(server);
  if (server.clientCredential === 'certificate' && provider.certificates) {
    if (!server.certificate) {
      throw new MailroomError('MR_OAUTH_NOT_CONFIGURED', 'This mail server authenticates with a certificate, but has none yet.', {
        field: 'certificate',
        fix: 'Click Generate certificate (or import one), download it and upload it in Azure › Certificates & secrets › Certificates.',
      });
    }
    return {
      kind: 'certificate',
      current: assertionKey(server.id, server.certificate, sealer),
      pending: server.pendingCertificate ? assertionKey(server.id, server.pendingCertificate, sealer) : null,
      alg: config.microsoftAssertionAlg,
    };
  }
  if (!server.clientSecretSealed) {
    throw new MailroomError('MR_OAUTH_NOT_CONFIGURED', 'This mail server has no client secret.', { field: 'clientSecret', fix: provider.secretHelp });
  }
  return { kind: 'secret', secret: sealer.open(server.clientSecretSealed, secretAad(server.id)) };
}
