// Test peers for the benchmarks (the same ones the end-to-end tests use) plus a connected Mailroom:
// Microsoft-shaped OAuth server, Dovecot 2.3 submission and IMAP checking tokens by introspection, SMTP
// sink; for the inbound benchmarks, realistic messages, Dovecot Maildirs filled with them, raw IMAP
// fetches and incoming servers.
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import type SMTPConnection from 'nodemailer/lib/smtp-connection';
import { authXoauth2TwoStep, type SendCommand } from '../src/smtp/xoauth2.ts';
import { storeTokens } from '../test/helpers/connect-directly.ts';
import { prng, type Rng } from '../test/helpers/prng.ts';
import { getToken, type TokenResponse } from '../test/peers/get-token.ts';
import { type Peers, type SinkMessage, startPeers } from '../test/peers/index.ts';
import { type CpuReport, cpuMeter, createApiKey, httpClient, type HttpReply, type MailroomChild, onCleanup, startMailroom } from './lib.ts';

const execFileAsync = promisify(execFile);

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

// ------------------------------------------------------------------------------------------------
// Realistic messages: Microsoft 365-shaped headers, quoted-printable text, HTML, base64 attachments

export { prng, type Rng };

const WORDS = (
  'the order invoice delivery shipment payment account please attached find regarding our your we will ' +
  'quarter report schedule meeting tomorrow confirm update status pending review approved contract ' +
  'price quote customer supplier warehouse stock item reference number due date amount total tax net ' +
  'thank you kind regards best team project deadline change request ticket issue resolved follow up ' +
  'Lieferung Rechnung Bestellung Grüße Straße Übersicht bezüglich fällig Änderung commande facture ' +
  'livraison réponse échéance reçu à été merci cordialement über für naïve café 東京 発注 납품'
).split(' ');
const NAMES = ['Anna Schmidt', 'James Carter', 'Élodie Martin', 'Kenji Watanabe', 'Priya Natarajan', 'Jürgen Weiß', 'Maria García', 'Accounts Payable', 'Noreply Billing'];
const DOMAINS = ['contoso.com', 'fabrikam.de', 'northwind.example', 'tailspin.fr', 'adatum.co.jp', 'litware.example'];
const ATTACHMENTS = [
  { type: 'application/pdf', ext: 'pdf' },
  { type: 'image/png', ext: 'png' },
  { type: 'image/jpeg', ext: 'jpg' },
  { type: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet', ext: 'xlsx' },
  { type: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', ext: 'docx' },
] as const;

function sentence(r: Rng): string {
  const n = r.int(6, 18);
  const w = Array.from({ length: n }, () => r.pick(WORDS));
  w[0] = w[0]!.charAt(0).toUpperCase() + w[0]!.slice(1);
  return `${w.join(' ')}${r.pick(['.', '.', '.', '?', '!'])}`;
}
/** Paragraphs of text of about `bytes` UTF-8 bytes. */
export function paragraphs(r: Rng, bytes: number): string[] {
  const out: string[] = [];
  let size = 0;
  while (size < bytes) {
    const p = Array.from({ length: r.int(2, 6) }, () => sentence(r)).join(' ');
    out.push(p);
    size += Buffer.byteLength(p) + 2;
  }
  return out;
}

/** Quoted-printable (RFC 2045) of UTF-8 text with LF line breaks, lines ≤ 76. */
export function qp(text: string): string {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const bytes = Buffer.from(line, 'utf8');
    let cur = '';
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      const last = i === bytes.length - 1;
      const enc = (b >= 33 && b <= 126 && b !== 61) || ((b === 32 || b === 9) && !last) ? String.fromCharCode(b) : `=${b.toString(16).toUpperCase().padStart(2, '0')}`;
      if (cur.length + enc.length > 75) {
        out.push(`${cur}=`);
        cur = '';
      }
      cur += enc;
    }
    out.push(cur);
  }
  return out.join('\n');
}
export const b64lines = (buf: Buffer, width = 76) => (buf.toString('base64').match(new RegExp(`.{1,${width}}`, 'g')) ?? []).join('\n');
/** A header field folded at spaces (or, for long tokens, anywhere) to lines of at most 78. */
function fold(name: string, value: string): string {
  const words = value.split(' ');
  const lines: string[] = [];
  let cur = `${name}:`;
  for (const w of words) {
    if (cur.length + 1 + w.length > 78 && cur.trim().length > name.length + 1) {
      lines.push(cur);
      cur = '\t';
    }
    let word = w;
    while (cur.length + 1 + word.length > 998) {
      const room = 900 - cur.length;
      lines.push(`${cur} ${word.slice(0, room)}`);
      word = word.slice(room);
      cur = '\t';
    }
    cur += `${cur === '\t' ? '' : ' '}${word}`;
  }
  lines.push(cur);
  return lines.join('\n');
}
const encodedWord = (s: string) => (/^[\x20-\x7e]*$/.test(s) ? s : `=?UTF-8?B?${Buffer.from(s).toString('base64')}?=`);
const addr = (name: string, email: string) => `${/^[\x20-\x7e]*$/.test(name) ? `"${name}"` : encodedWord(name)} <${email}>`;
const exchangeHost = (r: Rng) => `${r.pick(['AM0', 'DB9', 'VI1', 'PAXP', 'DU0', 'BN8', 'CH3', 'SN6'])}PR${r.int(10, 99)}MB${r.int(1000, 9999)}.${r.pick(['eurprd07', 'namprd12', 'apcprd03'])}.prod.outlook.com`;

export function m365Headers(r: Rng, i: number, date: Date, rich: boolean, hasAttach: boolean, to: string): string[] {
  const rfcDate = date.toUTCString().replace('GMT', '+0000');
  const h: string[] = [];
  if (rich) {
    for (let k = 0; k < r.int(3, 6); k++) {
      h.push(fold('Received', `from ${exchangeHost(r)} (2603:10a6:${r.int(100, 999)}:${r.int(1, 99)}::${r.int(10, 99)}) by ${exchangeHost(r)} with HTTPS; ${rfcDate}`));
    }
    h.push(fold('ARC-Seal', `i=1; a=rsa-sha256; s=arcselector9901; d=microsoft.com; cv=none; b=${r.bytes(256).toString('base64')}`));
    h.push(fold('ARC-Message-Signature', `i=1; a=rsa-sha256; c=relaxed/relaxed; d=microsoft.com; s=arcselector9901; h=From:Date:Subject:Message-ID:Content-Type:MIME-Version:X-MS-Exchange-AntiSpam-MessageData-ChunkCount:X-MS-Exchange-AntiSpam-MessageData-0:X-MS-Exchange-AntiSpam-MessageData-1; bh=${r.bytes(32).toString('base64')}; b=${r.bytes(256).toString('base64')}`));
    h.push(fold('ARC-Authentication-Results', 'i=1; mx.microsoft.com 1; spf=pass smtp.mailfrom=sender.example; dmarc=pass action=none header.from=sender.example; dkim=pass header.d=sender.example; arc=none'));
    h.push(fold('DKIM-Signature', `v=1; a=rsa-sha256; c=relaxed/relaxed; d=sender.example; s=selector1; h=From:Date:Subject:Message-ID:Content-Type:MIME-Version:X-MS-Exchange-SenderADCheck; bh=${r.bytes(32).toString('base64')}; b=${r.bytes(256).toString('base64')}`));
  } else {
    h.push(fold('Received', `from mail.${r.pick(DOMAINS)} (mail.${r.pick(DOMAINS)} [192.0.2.${r.int(1, 254)}]) by mx.example.test with ESMTPS id ${r.bytes(6).toString('hex')}; ${rfcDate}`));
  }
  const fromName = r.pick(NAMES);
  const fromDomain = r.pick(DOMAINS);
  h.push(`From: ${addr(fromName, `${fromName.split(' ')[0]!.toLowerCase().normalize('NFD').replace(/[^a-z]/g, '')}@${fromDomain}`)}`);
  h.push(`To: ${to}`);
  if (r.next() < 0.3) h.push(fold('Cc', `${addr(r.pick(NAMES), `team@${r.pick(DOMAINS)}`)}, ${addr(r.pick(NAMES), `ops@${r.pick(DOMAINS)}`)}`));
  const subject = `${r.next() < 0.3 ? 'RE: ' : ''}${sentence(r).slice(0, r.int(20, 70))} #${i}`;
  h.push(fold('Subject', encodedWord(subject)));
  if (rich) {
    h.push(fold('Thread-Topic', encodedWord(subject)));
    h.push(`Thread-Index: ${r.bytes(22).toString('base64')}`);
  }
  h.push(`Date: ${rfcDate}`);
  h.push(`Message-ID: <${r.bytes(12).toString('hex').toUpperCase()}.${i}@${rich ? exchangeHost(r) : `mail.${fromDomain}`}>`);
  if (r.next() < 0.3) {
    const refs = Array.from({ length: r.int(1, 4) }, () => `<${r.bytes(10).toString('hex')}@${exchangeHost(r)}>`);
    h.push(`In-Reply-To: ${refs[refs.length - 1]}`);
    h.push(fold('References', refs.join(' ')));
  }
  if (rich) {
    h.push('Accept-Language: en-US, de-DE', 'Content-Language: en-US', `X-MS-Has-Attach: ${hasAttach ? 'yes' : ''}`, 'X-MS-TNEF-Correlator:');
    h.push('X-MS-Exchange-Organization-SCL: 1', 'x-ms-publictraffictype: Email', `x-ms-traffictypediagnostic: ${exchangeHost(r).split('.')[0]}:EE_|${exchangeHost(r).split('.')[0]}:EE_`);
    h.push(`x-ms-office365-filtering-correlation-id: ${randomUUIDFrom(r)}`);
    h.push(fold('x-microsoft-antispam', `BCL:0;ARA:13230040|366016|1800799024|376014|38070700018;`));
    h.push(fold('x-microsoft-antispam-message-info', r.bytes(r.int(600, 1400)).toString('base64')));
    h.push(fold('x-forefront-antispam-report', `CIP:255.255.255.255;CTRY:;LANG:en;SCL:1;SRV:;IPV:NLI;SFV:NSPM;H:${exchangeHost(r)};PTR:;CAT:NONE;SFS:(13230040)(366016)(1800799024)(376014)(38070700018);DIR:INB;`));
    h.push('x-ms-exchange-antispam-messagedata-chunkcount: 1', fold('x-ms-exchange-antispam-messagedata-0', r.bytes(r.int(300, 900)).toString('base64')));
    h.push(`X-MS-Exchange-CrossTenant-Network-Message-Id: ${randomUUIDFrom(r)}`, `X-MS-Exchange-CrossTenant-originalarrivaltime: ${date.toISOString().slice(0, 19)}.${r.int(100, 999)}Z`);
    h.push('X-MS-Exchange-CrossTenant-fromentityheader: Hosted', `X-MS-Exchange-CrossTenant-id: ${randomUUIDFrom(r)}`, 'X-MS-Exchange-Transport-CrossTenantHeadersStamped: ' + exchangeHost(r).split('.')[0]);
  }
  h.push('MIME-Version: 1.0');
  return h;
}
function randomUUIDFrom(r: Rng): string {
  const h = r.bytes(16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
function htmlOf(ps: string[]): string {
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return [
    '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"><style type="text/css" style="display:none;"> P {margin-top:0;margin-bottom:0;} </style></head>',
    '<body dir="ltr"><div class="elementToProof" style="font-family: Aptos, Aptos_EmbeddedFont, Aptos_MSFontService, Calibri, Helvetica, sans-serif; font-size: 12pt; color: rgb(0, 0, 0);">',
    ...ps.map((p) => `<p style="margin:0">${esc(p)}</p><div><br></div>`),
    '</div></body></html>',
  ].join('\n');
}

export interface GeneratedMessage {
  raw: Buffer;
  attachments: number;
}

/** Message i to `to`: a size drawn from 2-50 KB; 20 % text only, 50 % text + HTML, 30 % with 1-2 attachments. */
export function makeMessage(r: Rng, i: number, date: Date, to: string): GeneratedMessage {
  const target = r.int(2 * 1024, 50 * 1024);
  const kind = r.next();
  const withAttach = kind >= 0.7 && target > 8 * 1024;
  const rich = target > 7 * 1024 && r.next() < 0.85;
  const headers = m365Headers(r, i, date, rich, withAttach, to).join('\n');
  let left = Math.max(300, target - Buffer.byteLength(headers) - 400);
  const lines: string[] = [headers];
  const boundary = (tag: string) => `_00${r.int(0, 9)}_${r.bytes(10).toString('hex')}_${tag}_`;
  const alternative = (budget: number): string[] => {
    const ps = paragraphs(r, budget * 0.33);
    const b = boundary('alt');
    return [
      `Content-Type: multipart/alternative; boundary="${b}"`,
      '',
      `--${b}`,
      'Content-Type: text/plain; charset="utf-8"',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      qp(ps.join('\n\n')),
      '',
      `--${b}`,
      'Content-Type: text/html; charset="utf-8"',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      qp(htmlOf(ps)),
      '',
      `--${b}--`,
    ];
  };
  let attachments = 0;
  if (withAttach) {
    const b = boundary('mixed');
    const count = r.next() < 0.25 ? 2 : 1;
    const textBudget = Math.min(left * 0.35, 6 * 1024);
    lines.push(`Content-Type: multipart/mixed; boundary="${b}"`, '', `--${b}`, ...alternative(textBudget), '');
    left -= textBudget;
    for (let k = 0; k < count; k++) {
      const a = r.pick(ATTACHMENTS);
      const name = `${r.pick(['Invoice', 'Rechnung', 'Scan', 'Report', 'Lieferschein', 'Photo'])}_${i}_${k}.${a.ext}`;
      const bin = r.bytes(Math.max(64, Math.floor(((left / count) * 3) / 4 * 0.97)));
      lines.push(
        `--${b}`,
        `Content-Type: ${a.type}; name="${name}"`,
        `Content-Description: ${name}`,
        `Content-Disposition: attachment; filename="${name}"; size=${bin.length}; creation-date="${date.toUTCString()}"; modification-date="${date.toUTCString()}"`,
        'Content-Transfer-Encoding: base64',
        '',
        b64lines(bin),
        '',
      );
      attachments++;
    }
    lines.push(`--${b}--`, '');
  } else if (kind < 0.2) {
    lines.push('Content-Type: text/plain; charset="utf-8"', 'Content-Transfer-Encoding: quoted-printable', '', qp(paragraphs(r, left).join('\n\n')), '');
  } else {
    lines.push(...alternative(left), '');
  }
  return { raw: Buffer.from(lines.join('\n'), 'utf8'), attachments };
}

// ------------------------------------------------------------------------------------------------
// Dovecot mailboxes: Maildir files written the way Dovecot writes them

export function maildirOf(peers: Peers, user: string): string {
  // test/peers/dovecot.ts: home=<dir>/mail/%Lu, mail_location = maildir:~/Maildir (INBOX is the root)
  return join(peers.dovecot.dir, 'mail', user.toLowerCase(), 'Maildir');
}

/** Creates the Maildir (home, cur, new, tmp) owned by the mail user, as Dovecot would. */
export function ensureMaildir(peers: Peers, user: string): { dir: string; uid: number; gid: number } {
  const owner = statSync(join(peers.dovecot.dir, 'mail'));
  const home = join(peers.dovecot.dir, 'mail', user.toLowerCase());
  const dir = maildirOf(peers, user);
  for (const d of [home, dir, join(dir, 'cur'), join(dir, 'new'), join(dir, 'tmp')]) {
    if (!existsSync(d)) {
      mkdirSync(d, { mode: 0o700 });
      chownSync(d, owner.uid, owner.gid);
    }
  }
  return { dir, uid: owner.uid, gid: owner.gid };
}

let fileSeq = 0;
/** Writes a message into Maildir/cur/ under a name like Dovecot's own (S= file size, W= size with CRLF). */
export function writeMaildirMessage(box: { dir: string; uid: number; gid: number }, raw: Buffer, time: Date): void {
  let lf = 0;
  for (let i = raw.indexOf(10); i !== -1; i = raw.indexOf(10, i + 1)) lf++;
  const sec = Math.floor(time.getTime() / 1000);
  const name = `${sec}.M${(fileSeq * 7) % 1_000_000}P${process.pid}Q${++fileSeq}.mailroom-bench,S=${raw.length},W=${raw.length + lf}:2,`;
  const file = join(box.dir, 'cur', name);
  writeFileSync(file, raw, { mode: 0o600 });
  chownSync(file, box.uid, box.gid);
}

/** Lets Dovecot scan and index the Maildir (not timed); returns its message count. */
export async function doveadmCount(peers: Peers, user: string): Promise<number> {
  const { stdout } = await execFileAsync('doveadm', ['-c', join(peers.dovecot.dir, 'dovecot.conf'), 'mailbox', 'status', '-u', user, 'messages', 'INBOX']);
  const m = /messages=(\d+)/.exec(stdout);
  if (!m) throw new Error(`doveadm mailbox status: ${stdout}`);
  return Number(m[1]);
}

// ------------------------------------------------------------------------------------------------
// Raw imapflow clients and incoming servers

export interface ImapAccess {
  port: number;
  ca: string;
  user: string;
  accessToken: string;
}

export async function rawClient(a: ImapAccess): Promise<ImapFlow> {
  const c = new ImapFlow({ host: '127.0.0.1', port: a.port, secure: true, auth: { user: a.user, accessToken: a.accessToken }, tls: { ca: a.ca }, logger: false } as ConstructorParameters<typeof ImapFlow>[0]);
  c.on('error', () => {});
  await c.connect();
  return c;
}

export interface RawResult {
  messages: number;
  bytes: number;
  ms: number;
  cpu: CpuReport;
}

/** Connect + login + SELECT + UID FETCH 1:* BODY.PEEK[]; every source dropped as it arrives. */
export async function rawFetchAll(a: ImapAccess): Promise<RawResult> {
  const cpu = cpuMeter();
  const t0 = performance.now();
  const c = await rawClient(a);
  let messages = 0;
  let bytes = 0;
  try {
    const lock = await c.getMailboxLock('INBOX');
    try {
      for await (const m of c.fetch('1:*', { uid: true, source: true })) {
        messages++;
        bytes += m.source?.length ?? 0;
      }
    } finally {
      lock.release();
    }
  } finally {
    await c.logout().catch(() => c.close());
  }
  return { messages, bytes, ms: performance.now() - t0, cpu: cpu() };
}

/** Requests of one Mailroom process's API (bench/lib.ts httpClient, or any client of that shape). */
export type Api = (method: string, path: string, body?: unknown) => Promise<HttpReply>;

/**
 * An incoming server for `user`'s INBOX on Dovecot (IMAPS at `imapPort`), the mail left on the server
 * and polled once a day: a fetch starts with Fetch Now, IDLE or the server's first scheduler tick.
 * No tokens yet. The OAuth client is this file's unless given.
 */
export async function createIncoming(api: Api, user: string, opts: { imapPort: number; clientId?: string; clientSecret?: string }): Promise<string> {
  const r = await api('POST', '/api/v1/incoming-servers', {
    name: `Bench ${user}`,
    imapHost: '127.0.0.1',
    imapPort: opts.imapPort,
    imapSecurity: 'tls',
    username: user,
    folder: 'INBOX',
    afterFetch: 'leave',
    intervalMinutes: 1440,
    clientId: opts.clientId ?? CLIENT_ID,
    clientSecret: opts.clientSecret ?? CLIENT_SECRET,
  });
  if (r.status !== 201) throw new Error(`creating the incoming server: HTTP ${r.status} ${JSON.stringify(r.json)}`);
  return r.json.id as string;
}
