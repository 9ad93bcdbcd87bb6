import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import type { AccessToken } from '../oauth/token-manager.ts';
import type { ConnectionGate, ConnectionGates } from '../smtp/connection-gate.ts';
import { withHeaderCase } from '../smtp/header-case.ts';
import type { MailSender, OutgoingMessage, RawOutgoingMessage, SendResult } from '../smtp/smtp-client.ts';
import { GRAPH_REQUEST_LIMIT, GraphError, graphCall, invalidResponse, processGraphResponse, uploadRequest, userPath, withGraphToken } from './graph-client.ts';

/** Exchange serves at most 4 concurrent Graph requests per app per mailbox (MailboxConcurrency): more only earn 429s. */
export const GRAPH_MAILBOX_CONCURRENCY = 4;
/**
 * The gate of a mailbox's Graph requests: Exchange counts them per mailbox, so every server of that
 * mailbox shares it (sending, Test Connection, Send test email, and receiving through Graph).
 */
export const graphGateKey = (mailbox: string) => `graph:${mailbox.trim().toLowerCase()}`;

/** Runs `fn` holding one of the gate's slots, if there is a gate. */
export async function withSlot<T>(gate: ConnectionGate | undefined, fn: () => Promise<T>): Promise<T> {
  const release = await gate?.acquire();
  try {
    return await fn();
  } finally {
    release?.();
  }
}

/**
 * Microsoft's throttling guidance: after a 429 (or a 503) with Retry-After the client is limited for
 * that long, for the whole mailbox. Without Retry-After nothing is paused (the request's own retry
 * backs off).
 */
function throttledFor(e: unknown): number | undefined {
  if (!(e instanceof GraphError) || (e.evidence.status !== 429 && e.evidence.status !== 503)) return undefined;
  if (e.evidence.code === 'MailboxPaused') return undefined;
  return e.evidence.retryAfterSeconds;
}

/** The refusal of a request Mailroom did not make: the mailbox is paused until `until`. */
export function mailboxPaused(mailbox: string, until: Date, now = new Date()): GraphError {
  return new GraphError({
    kind: 'graph',
    status: 429,
    code: 'MailboxPaused',
    message: `Microsoft Graph throttled the mailbox ${mailbox} (429 or 503 with Retry-After); Mailroom sends no request for it until ${until.toISOString()}.`,
    retryAfterSeconds: Math.max(1, Math.ceil((until.getTime() - now.getTime()) / 1000)),
  });
}

/**
 * Runs `fn` (Graph requests for `mailbox`) holding a slot of the mailbox's Graph gate, unless Graph
 * throttled the mailbox and its Retry-After has not passed: then nothing is sent and a MailboxPaused
 * GraphError says until when. A 429/503 with Retry-After that `fn` meets pauses the mailbox, for every
 * caller and, through the database, every instance: sending, receiving and the tests alike.
 */
export async function withGraphMailbox<T>(gates: ConnectionGates | undefined, mailbox: string, fn: () => Promise<T>): Promise<T> {
  const key = graphGateKey(mailbox);
  const refuseWhilePaused = async () => {
    const until = await gates?.pauses.until(key);
    if (until) throw mailboxPaused(mailbox, until, gates!.pauses.now());
  };
  await refuseWhilePaused();
  return withSlot(gates?.for(key, GRAPH_MAILBOX_CONCURRENCY), async () => {
    // A pause recorded while this waited for its slot holds too.
    await refuseWhilePaused();
    try {
      return await fn();
    } catch (e) {
      const seconds = throttledFor(e);
      if (seconds !== undefined && gates) await gates.pauses.pauseFor(key, seconds * 1000).catch(() => undefined);
      throw e;
    }
  });
}

/** Graph takes attachments under 3 MB inline; larger ones go through an upload session. */
const INLINE_ATTACHMENT_LIMIT = 3 * 1024 * 1024;
/** A request carrying up to 4 MB (sendMail with MIME, an inline attachment, an upload chunk): twice the JSON deadline, for slow uplinks. */
const UPLOAD_TIMEOUT_MS = 120_000;
/** Upload chunks must be multiples of 320 KiB (Microsoft); 12 of them is 3.75 MiB per request. */
const UPLOAD_CHUNK = 12 * 320 * 1024;

type Address = OutgoingMessage['to'][number];
const mailbox = (a: Address) => (typeof a === 'string' ? { address: a, name: '' } : a);
const recipient = (a: Address) => {
  const m = mailbox(a);
  return { emailAddress: { address: m.address, ...(m.name && { name: m.name }) } };
};

/**
 * The message as MIME, built the way the SMTP path builds it (same Message-ID, threading and custom
 * headers). Bcc stays in the headers: Graph takes the recipients of a MIME message from its headers
 * and removes Bcc before delivery.
 */
export function buildMime(msg: OutgoingMessage): Promise<Buffer> {
  const node = new MailComposer({ ...withHeaderCase(msg), ...(msg.messageId && { messageId: msg.messageId }) }).compile();
  (node as unknown as { keepBcc: boolean }).keepBcc = true;
  return new Promise((resolve, reject) => node.build((err, out) => (err ? reject(err) : resolve(out))));
}

/**
 * Sends through Microsoft Graph as the mailbox: one `POST /users/{mailbox}/sendMail` with the base64
 * MIME for messages under Graph's 4 MB request limit; larger ones as a draft whose attachments go
 * through upload sessions, then `send`. A 401 forces one token refresh and one retry, as a 535 does
 * on SMTP.
 */
export class GraphSender implements MailSender {
  constructor(
    private readonly host: string,
    private readonly mailbox: string,
    private readonly getToken: (forceRefresh: boolean) => Promise<AccessToken>,
    /** The mailbox's Graph gate and pauses, shared with receiving and the tests. */
    private readonly gates?: ConnectionGates,
  ) {}

  send(msg: OutgoingMessage | RawOutgoingMessage): Promise<SendResult> {
    return withGraphMailbox(this.gates, this.mailbox, () => ('raw' in msg ? this.sendRaw(msg) : this.sendWithRetry(msg)));
  }

  private token = async (forceRefresh: boolean) => (await this.getToken(forceRefresh)).accessToken;

  private async sendWithRetry(msg: OutgoingMessage): Promise<SendResult> {
    const mime = await buildMime(msg);
    return withGraphToken(this.token, (token) => this.sendOnce(msg, mime, token));
  }

  retire(): void {}

  close(): void {}

  /**
   * A message received over SMTP goes to Graph as the MIME it is. Graph takes the recipients from the
   * headers, so envelope recipients the headers do not name (the Bcc the listener removed) are given
   * back to Graph in a Bcc header, which Graph removes before delivery. Graph takes MIME up to 4 MB
   * only; such a message cannot be rebuilt as a draft without changing its bytes.
   */
  private async sendRaw(msg: RawOutgoingMessage): Promise<SendResult> {
    // The hidden recipients were worked out when the message was accepted (the row's Bcc).
    const hidden = msg.bcc ?? [];
    const mime = hidden.length ? Buffer.concat([Buffer.from(`Bcc: ${hidden.join(', ')}\r\n`), msg.raw]) : msg.raw;
    if (Math.ceil(mime.length / 3) * 4 > GRAPH_REQUEST_LIMIT) {
      throw new GraphError({ kind: 'graph', status: 413, code: 'RequestEntityTooLarge', message: `A message received over SMTP is sent to Graph as MIME, which Graph takes up to 4 MB (this one is ${(mime.length / 1048576).toFixed(1)} MB).`, request: 'POST /users/{mailbox}/sendMail' });
    }
    const messageId = /^Message-ID:\s*(<[^>]+>)/im.exec(msg.raw.subarray(0, 64 * 1024).toString('latin1'))?.[1] ?? '';
    await withGraphToken(this.token, (token) =>
      graphCall(this.host, { method: 'POST', path: `${userPath(this.mailbox)}/sendMail`, token, body: mime.toString('base64'), contentType: 'text/plain', timeoutMs: UPLOAD_TIMEOUT_MS }),
    );
    return { messageId, response: '202 Accepted (Microsoft Graph sendMail)', accepted: msg.envelope.to, rejected: [] };
  }

  private async sendOnce(msg: OutgoingMessage, mime: Buffer, token: string): Promise<SendResult> {
    const base64 = mime.toString('base64');
    const accepted = [...msg.to, ...(msg.cc ?? []), ...(msg.bcc ?? [])].map((a) => mailbox(a).address);
    const messageId = msg.messageId ?? /^Message-ID:\s*(<[^>]+>)/im.exec(mime.subarray(0, 64 * 1024).toString('latin1'))?.[1] ?? '';
    if (base64.length <= GRAPH_REQUEST_LIMIT) {
      await graphCall(this.host, { method: 'POST', path: `${userPath(this.mailbox)}/sendMail`, token, body: base64, contentType: 'text/plain', timeoutMs: UPLOAD_TIMEOUT_MS });
      return { messageId, response: '202 Accepted (Microsoft Graph sendMail)', accepted, rejected: [] };
    }
    await this.sendLarge(msg, token);
    return { messageId, response: '202 Accepted (Microsoft Graph draft with upload sessions, then send)', accepted, rejected: [] };
  }

  private async sendLarge(msg: OutgoingMessage, token: string): Promise<void> {
    const base = userPath(this.mailbox);
    const headers = Object.entries(msg.headers ?? {})
      // Graph accepts only custom x- headers on a draft; threading headers travel in the MIME path only.
      .filter(([name]) => /^x-/i.test(name))
      .map(([name, value]) => ({ name, value }));
    const draft = await graphCall<{ id?: unknown }>(this.host, {
      method: 'POST',
      path: `${base}/messages`,
      token,
      body: {
        subject: msg.subject,
        body: msg.html !== undefined ? { contentType: 'HTML', content: msg.html } : { contentType: 'Text', content: msg.text ?? '' },
        from: recipient(msg.from),
        toRecipients: msg.to.map(recipient),
        ccRecipients: (msg.cc ?? []).map(recipient),
        bccRecipients: (msg.bcc ?? []).map(recipient),
        ...(msg.replyTo && { replyTo: [recipient(msg.replyTo)] }),
        ...(msg.messageId && { internetMessageId: msg.messageId }),
        ...(headers.length && { internetMessageHeaders: headers }),
      },
    });
    if (typeof draft.id !== 'string' || !draft.id) throw invalidResponse('POST /users/{mailbox}/messages', 'the draft has no id');
    const attachments = `${base}/messages/${encodeURIComponent(draft.id)}/attachments`;
    for (const a of msg.attachments ?? []) {
      if (a.content.length < INLINE_ATTACHMENT_LIMIT) {
        await graphCall(this.host, {
          method: 'POST',
          path: attachments,
          token,
          body: { '@odata.type': '#microsoft.graph.fileAttachment', name: a.filename, contentType: a.contentType, contentBytes: a.content.toString('base64') },
          timeoutMs: UPLOAD_TIMEOUT_MS,
        });
        continue;
      }
      const session = await graphCall<{ uploadUrl?: unknown }>(this.host, {
        method: 'POST',
        path: `${attachments}/createUploadSession`,
        token,
        body: { AttachmentItem: { attachmentType: 'file', name: a.filename, size: a.content.length, contentType: a.contentType } },
      });
      if (typeof session.uploadUrl !== 'string') throw invalidResponse('POST createUploadSession', 'uploadUrl is not a string');
      const uploadUrl = session.uploadUrl;
      for (let start = 0; start < a.content.length; start += UPLOAD_CHUNK) {
        const chunk = a.content.subarray(start, Math.min(a.content.length, start + UPLOAD_CHUNK));
        // The upload URL is pre-authenticated: Microsoft refuses it with an Authorization header.
        const r = await uploadRequest(uploadUrl, {
          method: 'PUT',
          body: chunk,
          timeoutMs: UPLOAD_TIMEOUT_MS,
          contentType: 'application/octet-stream',
          headers: { 'content-range': `bytes ${start}-${start + chunk.length - 1}/${a.content.length}` },
        });
        await processGraphResponse(r, 'PUT upload session');
      }
    }
    await graphCall(this.host, { method: 'POST', path: `${base}/messages/${encodeURIComponent(draft.id)}/send`, token });
  }
}
