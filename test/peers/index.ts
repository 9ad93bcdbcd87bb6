import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuthServer, type ClientRegistration, startAuthServer } from './auth-server.ts';
import { type Dovecot, startDovecot } from './dovecot.ts';
import { GOOGLE_MAIL_SCOPE, type GoogleAuthServer, startGoogleAuthServer } from './google-auth-server.ts';
import { type SmtpSink, startSmtpSink } from './smtp-sink.ts';
import { createTestCa, type TestCa } from './test-ca.ts';

export { GRAPH_RESOURCE, GRAPH_SCOPES, MAILROOM_SCOPE, OUTLOOK_RESOURCE, OUTLOOK_SCOPES, signInAndConsent } from './auth-server.ts';
export type { AuthServer, ClientRegistration } from './auth-server.ts';
export type { Dovecot } from './dovecot.ts';
export { GOOGLE_MAIL_SCOPE, googleSignIn, TESTING_REFRESH_TOKEN_SECONDS } from './google-auth-server.ts';
export type { GoogleAuthServer } from './google-auth-server.ts';
export type { SinkBehavior, SinkMessage, SmtpSink } from './smtp-sink.ts';
export type { TestCa } from './test-ca.ts';

export interface PeersOptions {
  clients: ClientRegistration[];
  tenantId?: string;
  accessTokenTtlSeconds?: number;
  /** Mail the sink receives for these domains is delivered into the Dovecot mailboxes. Default: ['example.test']. */
  localDomains?: string[];
  /** Password logins Dovecot accepts beside tokens (Username/Password servers). */
  passwords?: Record<string, string>;
  /** Connections Dovecot must carry at once (many mailboxes watched with IDLE); default: Dovecot's limits. */
  connections?: number;
  /** Also starts the Google-shaped server, and Dovecot checks Google tokens instead of Microsoft ones: scope
   *  https://mail.google.com/, issued to `audience` (the client id Mailroom signs in with). */
  google?: { clients?: ClientRegistration[]; audience: string };
}

export interface Peers {
  /** Temp directory holding the CA and server certificate. */
  dir: string;
  ca: TestCa;
  /** CA certificate file for clients (e.g. NODE_EXTRA_CA_CERTS of a child process). */
  caFile: string;
  authServer: AuthServer;
  /** Only with the `google` option. */
  google: GoogleAuthServer | undefined;
  sink: SmtpSink;
  dovecot: Dovecot;
  stop(): Promise<void>;
}

/** Starts CA, authorization server, SMTP sink and Dovecot, wired together; `stop()` tears all of it down. */
export async function startPeers(opts: PeersOptions): Promise<Peers> {
  const localDomains = (opts.localDomains ?? ['example.test']).map((d) => d.toLowerCase());
  const dir = await mkdtemp(join(tmpdir(), 'mailroom-peers-'));
  const removeOnExit = () => rmSync(dir, { recursive: true, force: true });
  process.once('exit', removeOnExit);
  const stops: Array<() => Promise<void>> = [
    async () => {
      process.off('exit', removeOnExit);
      await rm(dir, { recursive: true, force: true });
    },
  ];
  // In reverse start order; one failing step must not keep the others from running.
  const stop = async () => {
    let firstError: unknown;
    for (const step of stops.splice(0).reverse()) {
      try {
        await step();
      } catch (err) {
        firstError ??= err;
      }
    }
    if (firstError !== undefined) throw firstError;
  };

  try {
    const ca = await createTestCa(dir);
    const authServer = await startAuthServer({
      tls: { cert: ca.cert, key: ca.key },
      clients: opts.clients,
      tenantId: opts.tenantId,
      accessTokenTtlSeconds: opts.accessTokenTtlSeconds,
    });
    stops.push(() => authServer.close());
    const google = opts.google ? await startGoogleAuthServer({ tls: { cert: ca.cert, key: ca.key }, clients: opts.google.clients ?? [], audience: opts.google.audience }) : undefined;
    if (google) stops.push(() => google.close());

    let dovecot: Dovecot | undefined;
    const sink = await startSmtpSink({
      async deliver(rcpt, raw) {
        const domain = rcpt.slice(rcpt.lastIndexOf('@') + 1).toLowerCase();
        if (dovecot && localDomains.includes(domain)) await dovecot.deliver(rcpt.toLowerCase(), raw);
      },
    });
    stops.push(() => sink.close());

    const started = await startDovecot({
      tls: { certFile: ca.certFile, keyFile: ca.keyFile },
      introspectionUrl: google?.httpIntrospectionUrl ?? authServer.httpIntrospectionUrl,
      relayPort: sink.port,
      ...(opts.google && { scopes: [GOOGLE_MAIL_SCOPE] }),
      ...(opts.passwords && { passwords: opts.passwords }),
      ...(opts.connections && { connections: opts.connections }),
      ...(!opts.google && { mailAccessUrl: authServer.httpMailAccessUrl }),
    });
    dovecot = started;
    stops.push(() => started.stop());

    return { dir, ca, caFile: ca.caFile, authServer, google, sink, dovecot: started, stop };
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
}
