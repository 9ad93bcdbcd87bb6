// Test peers for the benchmarks (the same ones the end-to-end tests use) plus a connected Mailroom:
// Microsoft-shaped OAuth server, Dovecot 2.3 submission checking tokens by introspection, SMTP sink.
import nodemailer from 'nodemailer';
import type SMTPConnection from 'nodemailer/lib/smtp-connection';
import { authXoauth2TwoStep, type SendCommand } from '../src/smtp/xoauth2.ts';
import { storeTokens } from '../test/helpers/connect-directly.ts';
import { getToken, type TokenResponse } from '../test/peers/get-token.ts';
import { type Peers, type SinkMessage, startPeers } from '../test/peers/index.ts';
import { createApiKey, httpClient, type MailroomChild, onCleanup, startMailroom } from './lib.ts';

export const CLIENT_ID = '7b3e9c1a-4d2f-4a6b-9c8d-0e1f2a3b4c5d';
export const CLIENT_SECRET = 'Bn8Q~bench.Secret_Value~0123456789abcd';
export const MAILBOX = 'bench@example.test';
/** Outside example.test: the sink records the message and does not run dovecot-lda. */
export const RECIPIENT = 'archive@remote.example';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';

/** ~1 KB of text: a typical short ERP notification, the message every delivery benchmark sends. */
export const BODY = `Dear customer,\n\n${'Your order has been confirmed and will ship within two business days. '.repeat(13)}\n\nKind regards,\nSales`;
/** Message `i` of a run; `tag` (X-Bench-Run) lets `arrivals` count the run's messages at the sink. */
export const message = (tag: string, i: number) => ({ from: MAILBOX, to: [RECIPIENT], subject: `Order confirmation ${i}`, text: BODY, headers: { 'X-Bench-Run': tag } });

export async function benchPeers(): Promise<Peers> {
  const peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  onCleanup('peers', () => peers.stop());
  return peers;
}

export function fetchToken(peers: Peers, login = MAILBOX): Promise<TokenResponse> {
  return getToken({
    authorityHost: peers.authServer.authorityHost,
    ca: peers.ca.caPem,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    redirectUri: TOKEN_REDIRECT,
    login,
  });
}

export interface ConnectedMailroom {
  mr: MailroomChild;
  key: string;
  serverId: string;
  api: ReturnType<typeof httpClient>['request'];
}

/** A Mailroom child with an admin API key and one mail server pointing at Dovecot submission (no tokens yet). */
export async function mailroomWithServer(peers: Peers, env: Record<string, string>, opts: Parameters<typeof startMailroom>[1] = {}): Promise<ConnectedMailroom> {
  const mr = await startMailroom({ MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost, NODE_EXTRA_CA_CERTS: peers.caFile, ...env }, opts);
  const key = await createApiKey(mr);
  const { request: api } = httpClient(mr.baseUrl, key);
  const s = await api('POST', '/api/v1/mail-servers', {
    name: 'Benchmark',
    username: MAILBOX,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    smtpHost: '127.0.0.1',
    smtpPort: peers.dovecot.submissionPort,
    smtpSecurity: 'starttls',
  });
  if (s.status !== 201) throw new Error(`creating the mail server: HTTP ${s.status} ${JSON.stringify(s.json)}`);
  return { mr, key, serverId: s.json.id as string, api };
}

/** Starts Mailroom again on the same port and data (after `c.mr.stop()`), with other settings. */
export function restartMailroom(c: ConnectedMailroom, peers: Peers, env: Record<string, string>): Promise<MailroomChild> {
  return startMailroom(
    { MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost, NODE_EXTRA_CA_CERTS: peers.caFile, ...env },
    { port: c.mr.port, dataDir: c.mr.dataDir },
  );
}

export function connect(c: ConnectedMailroom, peers: Peers, t: TokenResponse): void {
  storeTokens(c.mr.dataDir, c.serverId, MAILBOX, t, peers.authServer.tenantId);
}

/**
 * nodemailer options equivalent to Mailroom's (src/smtp/smtp-client.ts transportOptions): STARTTLS
 * required, certificate checked (the test CA passed explicitly, as this process has no
 * NODE_EXTRA_CA_CERTS), two-step XOAUTH2 through customAuth.
 */
export function smtpOptions(peers: Peers, accessToken: string): SMTPConnection.Options {
  return {
    host: '127.0.0.1',
    port: peers.dovecot.submissionPort,
    secure: false,
    requireTLS: true,
    tls: { ca: peers.ca.caPem, minVersion: 'TLSv1.2' },
    connectionTimeout: 15_000,
    greetingTimeout: 15_000,
    socketTimeout: 60_000,
    auth: { type: 'custom', user: MAILBOX, method: 'XOAUTH2' } as unknown as SMTPConnection.Credentials,
    customAuth: {
      XOAUTH2: async (ctx: SMTPConnection.CustomAuthenticationContext) => {
        await authXoauth2TwoStep(ctx.sendCommand as unknown as SendCommand, MAILBOX, accessToken);
      },
    },
    logger: false,
  } as SMTPConnection.Options;
}

export { nodemailer };

/**
 * Resolves with performance.now() when `n` messages carrying `X-Bench-Run: tag` have reached the sink
 * (counting starts now). `count()` reports progress.
 */
export function arrivals(peers: Peers, tag: string, n: number, timeoutMs: number): { done: Promise<number>; count: () => number } {
  let seen = 0;
  const needle = Buffer.from(`X-Bench-Run: ${tag}\r\n`);
  const done = peers.sink
    .waitForMessage((m: SinkMessage) => {
      if (m.raw.includes(needle)) seen++;
      return seen >= n;
    }, timeoutMs)
    .then(() => performance.now());
  return { done, count: () => seen };
}
