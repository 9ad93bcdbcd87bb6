import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { OutboxConfig } from '../config/config.ts';
import { MailroomError, validationError } from '../errors/errors.ts';
import { findApiKey } from '../storage/api-key-store.ts';
import { parseMessage } from '../inbound/parse-message.ts';
import { type Choice, chooseOwnedServer, type Ownership } from '../servers/choose-server.ts';
import { pageLimit, parseInput, queryText } from '../errors/parse-input.ts';
import type { Db } from '../storage/database.ts';
import { perTurn } from '../storage/per-turn.ts';
import { listMailServers, mailServerNames, mailServersVersion, type MailServerRecord, type StoredError } from '../storage/mail-server-store.ts';
import {
  cancelMessage,
  dueCounts,
  findByIdempotencyKey,
  findOutboxContent,
  findOutboxMessage,
  insertFinishedMessage,
  insertOutboxMessage,
  insertOutboxMessages,
  listOutboxMessages,
  type NewOutboxMessage,
  type OutboxRow,
  type OutboxState,
  type ReceivedVia,
  requeueMessage,
} from '../storage/outbox-store.ts';
import { InFlow } from './in-flow.ts';
import { type Mailbox, unprocessable, validateMessage } from './message-input.ts';
import { LIMIT_LABELS } from '../servers/send-limits.ts';
import { chooseForSubmitted } from '../submission/submitted-message.ts';
import { MAILROOM_ID_HEADER } from '../bounces/match-report.ts';
import { findSuppressions, recipientOutcomes, type RecipientState, serverReportSettings, type Suppression } from '../storage/bounce-store.ts';

export interface MessageView {
  id: string;
  state: OutboxState;
  from: string;
  to: string[];
  cc: string[];
  bcc: string[];
  replyTo: string | null;
  subject: string;
  mailServerId: string | null;
  mailServerName: string | null;
  messageId: string;
  attempts: number;
  maxAttempts: number;
  nextAttemptAt: string | null;
  sentAt: string | null;
  smtpResponse: string | null;
  lastError: OutboxRow['lastError'];
  attachments: OutboxRow['attachments'];
  sizeBytes: number;
  createdAt: string;
  updatedAt: string;
  /** Set when the message did not come through the REST API: "received over SMTP from … as …". */
  receivedVia: ReceivedVia | null;
  /** The API key that queued it (REST or SMTP listener); null for an admin's session or a message queued before keys were recorded. */
  apiKeyId: string | null;
  /** After the 250: the worst outcome reported by any recipient's server (bounced, delayed, auto_replied, delivered), or null. */
  outcome: OutboxRow['outcome'];
  /** One message (GET /api/v1/messages/{id}), once sent: each recipient's outcome as the reports came back. */
  recipients?: RecipientView[];
  /** One message only: the body and custom headers as queued; null for a message received over SMTP (sent as it came). */
  content?: MessageContent | null;
  /** Accepted all the same: e.g. a recipient is suppressed and the server's setting is to send with a warning. */
  warnings?: Array<{ code: 'suppressed'; address: string; message: string }>;
}

/** What a message says, as queued: shown on its page so the admin sees what was sent. */
export interface MessageContent {
  text: string | null;
  html: string | null;
  /** text or html is only the beginning (each is cut at 1 MiB characters). */
  truncated: boolean;
  /** Custom headers as given, names in their own case. */
  headers: Record<string, string>;
}

const CONTENT_LIMIT = 1024 * 1024;
export interface RecipientView {
  address: string;
  state: RecipientState;
  status: string | null;
  diagnostic: string | null;
  category: string | null;
  reportedAt: string | null;
}

const bareAddress = (d: string) => (/<([^<>]*)>\s*$/.exec(d)?.[1] ?? d).trim().toLowerCase();

/** Why mail to a suppressed address is refused or warned about, naming the bounce. */
function suppressionText(s: Suppression): string {
  const what = s.reason === 'hard' ? 'bounced' : `bounced ${s.bounces} times in 13 weeks`;
  return `${s.address} is suppressed: it ${what} (${[s.status, s.diagnostic].filter(Boolean).join(', ') || s.category || 'no detail'}) on ${s.createdAt.slice(0, 10)}${s.outboxMessageId ? `, message ${s.outboxMessageId}` : ''}.`;
}

/**
 * Which messages a caller may see or act on; an absent field is no limit. A send key sees and acts
 * on only what it queued (`apiKeyId`); a server-limited key only its servers' messages.
 */
export interface OutboxAccess {
  apiKeyId?: string;
  mailServerIds?: string[];
}

const visible = (r: Pick<OutboxRow, 'apiKeyId' | 'mailServerId'>, a: OutboxAccess) =>
  (a.apiKeyId === undefined || r.apiKeyId === a.apiKeyId) && (a.mailServerIds === undefined || (r.mailServerId !== null && a.mailServerIds.includes(r.mailServerId)));

/** The servers a key limited to `allowed` may use: the automatic choice picks among these only. */
const within = <T extends { id: string }>(servers: T[], allowed: string[] | null | undefined) => (allowed ? servers.filter((s) => allowed.includes(s.id)) : servers);

function forbiddenServer(serverId: string): MailroomError {
  // Said the same whether the server exists or not: the key learns nothing about servers it may not use.
  return new MailroomError('MR_AUTH_FORBIDDEN', `This API key may not send through the mail server ${serverId}; it is limited to other outgoing servers.`, {
    field: 'mailServerId',
    fix: 'Leave mailServerId out to let Mailroom choose among the servers this key may use, or ask an admin for a key that may use this server (Settings > Technical > API Keys).',
  });
}

/** A Send test email as the server test sent it (id, Message-ID and X-Mailroom-Id made beforehand). */
export interface TestEmail {
  id: string;
  mailServerId: string;
  from: string;
  to: string;
  subject: string;
  text: string;
  messageId: string;
  headers: Record<string, string>;
}

/** A complete message as a client submitted it over SMTP, ready to be kept as it is. */
export interface RawSubmission {
  /** The bytes to send (the submission listener has already removed Bcc). */
  raw: Buffer;
  envelope: { from: string; to: string[] };
  /** X-Mailroom-Owner (removed from raw): only this owner's mailboxes send it; null: shared ones. */
  owner?: string | null;
  apiKeyId: string;
  receivedVia: ReceivedVia;
}

const STATES = ['queued', 'sending', 'sent', 'failed', 'held', 'cancelled'] as const;

export const listQuerySchema = z.object({
  state: z.enum(STATES, { error: `state must be one of ${STATES.join(', ')}` }).optional(),
  mailServerId: queryText('mailServerId').optional(),
  q: queryText('q').optional(),
  limit: pageLimit,
  cursor: queryText('cursor').optional(),
});

/** Stable JSON (sorted keys): the same request body always hashes the same. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** A message with more recipients than the chosen server takes per message is refused, naming the limit. */
function checkRecipients(server: MailServerRecord, recipients: number): void {
  const perMessage = server.limits.recipientsPerMessage;
  if (perMessage === null || recipients <= perMessage) return;
  throw unprocessable(
    `This message has ${recipients.toLocaleString('en-US')} recipients (to, cc and bcc); the mail server "${server.name}" allows at most ${perMessage.toLocaleString('en-US')} per message (${LIMIT_LABELS.recipientsPerMessage}, recipientsPerMessage).`,
    `Send it as several messages of at most ${perMessage.toLocaleString('en-US')} recipients each, or raise ${LIMIT_LABELS.recipientsPerMessage} on the mail server if its provider allows more.`,
    'to',
  );
}

/** FROM Filtering lets Mailroom send as an address; Exchange also wants the mailbox to hold Send As rights on it. */
function sendAsFix(address: string | undefined): string {
  return address ? ` (a Microsoft 365 mailbox also needs Send As rights on ${address} in Exchange)` : '';
}

/** The fix for a sender no outgoing server may send as (REST 422, SMTP 550 at MAIL FROM, the CLI). */
function senderFix(from: string, keyLimited: boolean): string {
  const domain = from.slice(from.lastIndexOf('@') + 1);
  return `Send from the mailbox of an outgoing mail server, or set the FROM Filtering of one to ${from} or ${domain} in Settings > Technical > Mail Servers${sendAsFix(from)}${keyLimited ? ' (this API key may use only some servers: an admin can create a key for others)' : ''}.`;
}

const display = (m: Mailbox) => (m.name ? `${m.name} <${m.address}>` : m.address);

export class OutboxService {
  private serverList: Promise<MailServerRecord[]> | undefined;
  private serverCache: { version: string; list: Promise<MailServerRecord[]> } | undefined;

  constructor(
    private readonly deps: { db: Db; config: OutboxConfig; now?: () => Date; onEnqueued?: () => void },
  ) {
    // Only where this process delivers: an instance that only accepts (OUTBOX_WORKER=off) holds nothing back.
    const { workerEnabled, inFlowBacklog, inFlowDelayMs } = deps.config;
    this.inFlow = new InFlow({ count: (ids) => dueCounts(deps.db, ids, this.now()), backlog: inFlowBacklog, delayMs: workerEnabled ? inFlowDelayMs : 0 });
  }

  /** Postfix's in_flow_delay: a message for a mailbox whose backlog is over the mark waits a little (see InFlow). */
  private readonly inFlow: InFlow;

  /**
   * Held only where the worker is what the queue waits for: a paced mailbox's queue waits on its rate
   * (30 a minute at Exchange), which accepting more does not slow, so an ERP queueing a day's invoices
   * there is not made to wait for them.
   */
  private admit(server: MailServerRecord): Promise<void> {
    return server.limits.messagesPerMinute === null ? this.inFlow.admit(server.id) : Promise.resolve();
  }

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  /**
   * Validates, picks the server, and commits the message before answering: once this returns, the
   * message is on disk (SQLite synchronous=FULL) and will be delivered or reported failed.
   */
  async enqueue(
    body: unknown,
    opts: { idempotencyKey?: string; apiKeyId?: string | null; mailServerIds?: string[] | null } = {},
  ): Promise<{ message: MessageView; created: boolean }> {
    const given = opts.idempotencyKey?.trim();
    if (given !== undefined && (given.length === 0 || given.length > 255)) {
      throw new MailroomError('MR_VALIDATION', 'The Idempotency-Key header must be 1–255 characters.', { field: 'Idempotency-Key' });
    }
    // Keys belong to the caller (an API key, or the admins' sessions): another key using the same
    // Idempotency-Key gets a message of its own, never this one or a hint that it exists.
    const key = given && `${opts.apiKeyId ?? 'session'}/${given}`;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw validationError({ body: 'Send a JSON object (Content-Type: application/json)' });
    }
    const requestHash = key ? createHash('sha256').update(canonical(body)).digest('base64url') : null;
    if (key) {
      const existing = await this.replay(key, requestHash!);
      if (existing) return { message: existing, created: false };
    }
    const msg = validateMessage(body, this.deps.config.maxMessageBytes);
    if (msg.mailServerId && opts.mailServerIds && !opts.mailServerIds.includes(msg.mailServerId)) throw forbiddenServer(msg.mailServerId);
    const servers = within(await this.serversThisTurn(), opts.mailServerIds);
    const choice = chooseOwnedServer(servers, msg.from?.address ?? null, msg.mailServerId, { owner: msg.owner, allowSharedFallback: msg.allowSharedFallback });
    if (!choice.ok) {
      const fix =
        choice.field === 'owner'
          ? `Send ${msg.owner} a connect link (POST /api/v1/connect-links) so they connect their own mailbox, or set allowSharedFallback to let a shared mailbox send.`
          : msg.owner !== null && choice.field === 'from'
            ? `Send from ${msg.owner}'s own mailbox (or leave from out to send as it), or set allowSharedFallback to let a shared mailbox send for this sender.`
            : choice.field === 'mailServerId'
          ? 'Use the id of an active server from GET /api/v1/mail-servers.'
          : msg.mailServerId
            ? `Send from an address this server may send as, or leave mailServerId out to let Mailroom choose a server that may send as this sender${sendAsFix(msg.from?.address)}.`
            : senderFix(msg.from?.address ?? '', !!opts.mailServerIds);
      throw unprocessable(choice.reason, fix, choice.field);
    }
    const server = choice.server;
    checkRecipients(server, msg.to.length + msg.cc.length + msg.bcc.length);
    await this.admit(server);
    const warnings = await this.checkSuppressed(server, [...msg.to, ...msg.cc, ...msg.bcc].map((m) => m.address), 'to');
    const from = msg.from ?? { name: '', address: server.username };
    const domain = from.address.slice(from.address.lastIndexOf('@') + 1);
    const id = randomUUID();
    const row: NewOutboxMessage = {
      id,
      from: display(from),
      to: msg.to.map(display),
      cc: msg.cc.map(display),
      bcc: msg.bcc.map(display),
      replyTo: msg.replyTo ? display(msg.replyTo) : null,
      subject: msg.subject,
      mailServerId: server.id,
      // The local part is the outbox id (still a random UUID): a report that quotes only the
      // Message-ID is matched even when the row's message_id was not found by value.
      messageId: `<${id}@${domain}>`,
      sizeBytes: msg.sizeBytes,
      payload: {
        text: msg.text,
        html: msg.html,
        headers: { ...msg.headers, [MAILROOM_ID_HEADER]: id },
        attachments: msg.attachments.map(({ filename, contentType, content }) => ({ filename, contentType, content })),
        from,
        to: msg.to,
        cc: msg.cc,
        bcc: msg.bcc,
        replyTo: msg.replyTo,
      },
      attachments: msg.attachments.map(({ filename, contentType, size }) => ({ filename, contentType, size })),
      idempotencyKey: key ?? null,
      requestHash,
      apiKeyId: opts.apiKeyId ?? null,
      maxAttempts: this.deps.config.maxAttempts,
    };
    const now = this.now();
    if (key) {
      if (!(await insertOutboxMessage(this.deps.db, row, now))) {
        // Lost a race with a concurrent request carrying the same key.
        const winner = await this.replay(key, requestHash!);
        if (winner) return { message: winner, created: false };
      }
    } else {
      await this.insertGrouped(row);
    }
    this.deps.onEnqueued?.();
    return { message: { ...this.viewOfNew(row, server.name, now), ...(warnings.length && { warnings }) }, created: true };
  }

  /**
   * Records a Send test email (sent at once by the server's test, outside the queue) with its outcome,
   * so that Emails lists it with the server's reply or its error like any message. Its id is the one
   * the test sent in X-Mailroom-Id and the Message-ID, so a bounce of it is matched too.
   */
  async recordTestEmail(t: TestEmail, outcome: { state: 'sent'; smtpResponse: string } | { state: 'failed'; error: StoredError }): Promise<void> {
    const to = { name: '', address: t.to };
    const from = { name: '', address: t.from };
    await insertFinishedMessage(
      this.deps.db,
      {
        id: t.id,
        from: t.from,
        to: [t.to],
        cc: [],
        bcc: [],
        replyTo: null,
        subject: t.subject,
        mailServerId: t.mailServerId,
        messageId: t.messageId,
        sizeBytes: Buffer.byteLength(t.text),
        payload: { text: t.text, html: null, headers: t.headers, attachments: [], from, to: [to], cc: [], bcc: [], replyTo: null },
        attachments: [],
        idempotencyKey: null,
        requestHash: null,
        apiKeyId: null,
        maxAttempts: this.deps.config.maxAttempts,
      },
      outcome,
      this.now(),
    );
  }

  /**
   * Suppressed recipients: per the server's setting refused (422 naming the address and its bounce)
   * or returned as warnings (the default).
   */
  private async checkSuppressed(server: MailServerRecord, addresses: string[], field: string): Promise<NonNullable<MessageView['warnings']>> {
    const found = await findSuppressions(this.deps.db, addresses);
    if (!found.length) return [];
    const { suppressionPolicy } = await serverReportSettings(this.deps.db, server.id);
    if (suppressionPolicy === 'refuse') {
      throw new MailroomError('MR_UNPROCESSABLE', found.map(suppressionText).join(' '), {
        field,
        fix: `Correct the address, or lift the suppression once the recipient's mailbox works again (DELETE /api/v1/suppressions/{address}, or Settings > Technical > Suppressions). The mail server "${server.name}" refuses suppressed recipients; its setting can send with a warning instead.`,
        evidence: { suppressed: found.map((f) => ({ address: f.address, reason: f.reason, status: f.status, diagnostic: f.diagnostic, category: f.category, outboxMessageId: f.outboxMessageId })) },
      });
    }
    return found.map((f) => ({ code: 'suppressed' as const, address: f.address, message: `${suppressionText(f)} Sent all the same (the server's setting is to warn).` }));
  }

  /**
   * The server that would send for this sender (FROM Filtering and Priority), or why none would, with
   * the fix: the SMTP listener asks at MAIL FROM, before the client sends the message.
   */
  async chooseFor(from: string, mailServerIds?: string[] | null, ownership: Ownership = { owner: undefined }): Promise<Choice<MailServerRecord> & { fix?: string }> {
    const choice = chooseOwnedServer(within(await this.serversThisTurn(), mailServerIds), from, null, ownership);
    if (choice.ok) return choice;
    const fix =
      ownership.owner
        ? `Send from ${ownership.owner}'s own mailbox, or connect it first with a connect link (POST /api/v1/connect-links).`
        : senderFix(from, !!mailServerIds);
    return { ...choice, fix };
  }

  /**
   * Queues a message received over SMTP as it is: the headers are read (subject, From, To, Cc,
   * Message-ID, attachment names) for the list and search, never rewritten. The server is chosen by
   * the From header's address, else the envelope sender. Committed (group commit) before it returns.
   */
  async enqueueRaw(s: RawSubmission): Promise<MessageView> {
    const parsed = await parseMessage(s.raw);
    // A server-limited key sends over SMTP only through its servers too.
    const limits = (await findApiKey(this.deps.db, s.apiKeyId))?.mailServerIds;
    const server = await chooseForSubmitted(s.raw, parsed.problem, s.envelope.from, (from) => this.chooseFor(from, limits, { owner: s.owner ?? null }));
    // The envelope is who receives it, whatever the headers say.
    checkRecipients(server, s.envelope.to.length);
    await this.admit(server);
    const warnings = await this.checkSuppressed(server, s.envelope.to, 'to');
    const addressOf = (display: string) => (/<([^<>]*)>\s*$/.exec(display)?.[1] ?? display).toLowerCase();
    const inHeaders = new Set([...parsed.to, ...parsed.cc].map(addressOf));
    const sender = s.envelope.from;
    const domain = sender.slice(sender.lastIndexOf('@') + 1);
    const row: NewOutboxMessage = {
      id: randomUUID(),
      from: parsed.from || s.envelope.from,
      to: parsed.to,
      cc: parsed.cc,
      // Envelope recipients the headers do not show: what Bcc was before the listener removed it.
      bcc: s.envelope.to.filter((a) => !inHeaders.has(a.toLowerCase())),
      replyTo: null,
      subject: parsed.subject,
      mailServerId: server.id,
      // The listener adds a Message-ID when the client sent none; this fallback only covers a header
      // mailparser could not read.
      messageId: parsed.messageId ?? `<${randomUUID()}@${domain}>`,
      sizeBytes: s.raw.length,
      payload: { kind: 'raw', envelope: s.envelope, raw: s.raw },
      attachments: parsed.attachments,
      idempotencyKey: null,
      requestHash: null,
      apiKeyId: s.apiKeyId,
      maxAttempts: this.deps.config.maxAttempts,
      receivedVia: s.receivedVia,
    };
    await this.insertGrouped(row);
    this.deps.onEnqueued?.();
    return { ...this.viewOfNew(row, server.name, this.now()), ...(warnings.length && { warnings }) };
  }

  /**
   * The server list as of this event-loop turn: concurrent requests in one turn share it, and the next
   * turn looks again, so a change made by an admin (here or in another instance) applies to the very
   * next request. Looking is one row (mailServersVersion, moved by the database on every add, save
   * and delete); the list itself (a thousand rows at a thousand mailboxes) is read again only when it moved.
   */
  private serversThisTurn(): Promise<MailServerRecord[]> {
    if (!this.serverList) {
      this.serverList = this.currentServers();
      setImmediate(() => (this.serverList = undefined));
    }
    return this.serverList;
  }

  private async currentServers(): Promise<MailServerRecord[]> {
    const version = await mailServersVersion(this.deps.db);
    const cached = this.serverCache;
    if (cached && cached.version === version) return cached.list;
    const list = listMailServers(this.deps.db);
    const entry = { version, list };
    this.serverCache = entry;
    list.catch(() => {
      if (this.serverCache === entry) this.serverCache = undefined;
    });
    return list;
  }

  /** Waits for the group commit of everything accepted in this event-loop turn. */
  private readonly insertGrouped = perTurn<NewOutboxMessage>((rows) => insertOutboxMessages(this.deps.db, rows, this.now()));

  private viewOfNew(r: NewOutboxMessage, serverName: string, now: Date): MessageView {
    const ts = now.toISOString();
    return {
      id: r.id,
      state: 'queued',
      from: r.from,
      to: r.to,
      cc: r.cc,
      bcc: r.bcc,
      replyTo: r.replyTo,
      subject: r.subject,
      mailServerId: r.mailServerId,
      mailServerName: serverName,
      messageId: r.messageId,
      attempts: 0,
      maxAttempts: r.maxAttempts,
      nextAttemptAt: ts,
      sentAt: null,
      smtpResponse: null,
      lastError: null,
      attachments: r.attachments,
      sizeBytes: r.sizeBytes,
      createdAt: ts,
      updatedAt: ts,
      receivedVia: r.receivedVia ?? null,
      apiKeyId: r.apiKeyId,
      outcome: null,
    };
  }

  private async replay(key: string, requestHash: string): Promise<MessageView | undefined> {
    const existing = await findByIdempotencyKey(this.deps.db, key);
    if (!existing) return undefined;
    if (existing.requestHash !== requestHash) {
      throw new MailroomError('MR_IDEMPOTENCY_MISMATCH', 'This Idempotency-Key was already used with a different message.', {
        field: 'Idempotency-Key',
        fix: 'Use a new key for a new message; repeat a key only to retry the very same request.',
      });
    }
    return this.view(existing);
  }

  /** The names of the servers these messages went through: a query for those few, not every server (thousands of mailboxes). */
  private serverNames(rows: OutboxRow[]): Promise<Map<string, string>> {
    return mailServerNames(this.deps.db, [...new Set(rows.flatMap((r) => (r.mailServerId ? [r.mailServerId] : [])))]);
  }

  private async view(r: OutboxRow, names?: Map<string, string>): Promise<MessageView> {
    const n = names ?? (await this.serverNames([r]));
    return {
      id: r.id,
      state: r.state,
      from: r.from,
      to: r.to,
      cc: r.cc,
      bcc: r.bcc,
      replyTo: r.replyTo,
      subject: r.subject,
      mailServerId: r.mailServerId,
      mailServerName: r.mailServerId ? (n.get(r.mailServerId) ?? null) : null,
      messageId: r.messageId,
      attempts: r.attempts,
      maxAttempts: r.maxAttempts,
      nextAttemptAt: r.state === 'queued' ? r.nextAttemptAt : null,
      sentAt: r.sentAt,
      smtpResponse: r.smtpResponse,
      lastError: r.lastError,
      attachments: r.attachments,
      sizeBytes: r.sizeBytes,
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
      receivedVia: r.receivedVia,
      apiKeyId: r.apiKeyId,
      outcome: r.outcome,
    };
  }

  /** Every recipient of a sent message with its latest reported outcome ('sent' until a report says more). */
  async recipients(r: OutboxRow): Promise<RecipientView[]> {
    if (r.state !== 'sent' && !r.outcome) return [];
    const reported = new Map((await recipientOutcomes(this.deps.db, r.id)).map((o) => [o.address, o]));
    const out: RecipientView[] = [];
    for (const address of new Set([...r.to, ...r.cc, ...r.bcc].map(bareAddress))) {
      const o = reported.get(address);
      reported.delete(address);
      out.push(o ? { address, state: o.state, status: o.status, diagnostic: o.diagnostic, category: o.category, reportedAt: o.reportedAt } : { address, state: 'sent', status: null, diagnostic: null, category: null, reportedAt: null });
    }
    // A report about an address the message did not name (a forward, an alias expanded downstream).
    for (const o of reported.values()) out.push({ address: o.address, state: o.state, status: o.status, diagnostic: o.diagnostic, category: o.category, reportedAt: o.reportedAt });
    return out;
  }

  /** A message the caller may see; another key's message is 404 as if it did not exist. */
  async get(id: string, access: OutboxAccess = {}): Promise<MessageView> {
    const r = await this.find(id, access);
    return { ...(await this.view(r)), recipients: await this.recipients(r), content: await this.content(r.id) };
  }

  /** The body (each part cut at CONTENT_LIMIT characters) and the custom headers the message was queued with. */
  private async content(id: string): Promise<MessageContent | null> {
    const c = await findOutboxContent(this.deps.db, id);
    if (!c) return null;
    const cut = (s: string | null) => (s !== null && s.length > CONTENT_LIMIT ? s.slice(0, CONTENT_LIMIT) : s);
    const headers = Object.fromEntries(Object.entries(c.headers).filter(([name]) => name.toLowerCase() !== MAILROOM_ID_HEADER.toLowerCase()));
    return {
      text: cut(c.text),
      html: cut(c.html),
      truncated: (c.text?.length ?? 0) > CONTENT_LIMIT || (c.html?.length ?? 0) > CONTENT_LIMIT,
      headers,
    };
  }

  private async find(id: string, access: OutboxAccess): Promise<OutboxRow> {
    const r = await findOutboxMessage(this.deps.db, id);
    if (!r || !visible(r, access)) throw new MailroomError('MR_NOT_FOUND', `Message ${id} does not exist.`);
    return r;
  }

  async list(query: unknown, access: OutboxAccess = {}): Promise<{ items: MessageView[]; nextCursor: string | null }> {
    const q = parseInput(listQuerySchema, query);
    let after: { createdAt: string; id: string } | undefined;
    if (q.cursor) {
      const [createdAt, id] = Buffer.from(q.cursor, 'base64url').toString('utf8').split('|');
      if (!createdAt || !id) throw new MailroomError('MR_VALIDATION', 'The cursor is not one this API returned.', { field: 'cursor' });
      after = { createdAt, id };
    }
    const rows = await listOutboxMessages(this.deps.db, {
      ...(q.state && { state: q.state }),
      ...(q.mailServerId && { mailServerId: q.mailServerId }),
      ...(q.q && { q: q.q }),
      ...(access.apiKeyId && { apiKeyId: access.apiKeyId }),
      ...(access.mailServerIds && { mailServerIds: access.mailServerIds }),
      ...(after && { after }),
      limit: q.limit + 1,
    });
    const page = rows.slice(0, q.limit);
    const last = page[page.length - 1];
    const names = await this.serverNames(page);
    return {
      items: await Promise.all(page.map((r) => this.view(r, names))),
      nextCursor: rows.length > q.limit && last ? Buffer.from(`${last.createdAt}|${last.id}`).toString('base64url') : null,
    };
  }

  /**
   * The message the caller acts on: one it may not see is 404; one it may see (outbox:read) but did
   * not queue is 403.
   */
  private async actOn(id: string, read: OutboxAccess, act: OutboxAccess, verb: string): Promise<OutboxRow> {
    const r = await this.find(id, read);
    if (!visible(r, act)) {
      throw new MailroomError('MR_AUTH_FORBIDDEN', `This API key may ${verb} only the messages it queued; message ${id} was queued by someone else.`, {
        fix: `Ask an admin to ${verb} it, or use the key that queued it.`,
      });
    }
    return r;
  }

  /** `read`: what the caller may see (404 outside); `act`: what it may change (403 outside). */
  async retry(id: string, read: OutboxAccess = {}, act: OutboxAccess = read): Promise<MessageView> {
    const current = await this.actOn(id, read, act, 'retry');
    if (!(await requeueMessage(this.deps.db, id, this.now()))) {
      throw new MailroomError('MR_CONFLICT', `A ${current.state} message cannot be retried; only failed, held or cancelled ones can.`);
    }
    this.deps.onEnqueued?.();
    return this.get(id);
  }

  async cancel(id: string, read: OutboxAccess = {}, act: OutboxAccess = read): Promise<MessageView> {
    const current = await this.actOn(id, read, act, 'cancel');
    if (!(await cancelMessage(this.deps.db, id, this.now()))) {
      throw new MailroomError('MR_CONFLICT', `A ${current.state} message cannot be cancelled; only queued, held or failed ones can.`);
    }
    return this.get(id);
  }
}

