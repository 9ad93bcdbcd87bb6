import { createHash, randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ImapFlow } from 'imapflow';
import { MailroomError } from '../errors/errors.ts';
import type { ConnectionGates } from '../smtp/connection-gate.ts';
import type { Logger } from '../logger.ts';
import type { TokenManager } from '../oauth/token-manager.ts';
import { connectionError, connectionFailed, forgetSkippedAnswers, type ImapBounds, ImapError, imapErrorFrom, isTooLarge, malformedImap, openImap, skippedAnswers, Stall, type ImapTarget } from '../imap/imap-session.ts';
import { formatBytes } from '../net/bounded-fetch.ts';
import type { Db } from '../storage/database.ts';
import { clearAfterFetch, existingDedupeKeys, getFolderState, importInboundMessages, type MessageProblem, pendingAfterFetch, setFolderState } from '../storage/inbound-store.ts';
import type { MailServerRecord } from '../storage/mail-server-store.ts';
import { listWebhooks } from '../storage/webhook-store.ts';
import { type FetchedMessage, inboundRows } from './inbound-rows.ts';
import { discardRaw, type ParsedMessage, parseMessage, storeRaw, unreadableMessage } from './parse-message.ts';
import type { ParsePool } from './parse-pool.ts';

/** Above this, a message is streamed alone instead of fetched with others. */
const SMALL_MESSAGE_BYTES = 512 * 1024;
/** One UID FETCH streams up to this many messages; their after-fetch action follows it. */
const SEGMENT_MESSAGES = 2000;
/** Messages committed in one transaction: up to this many, or this many bytes. */
const BATCH_MESSAGES = 100;
const BATCH_BYTES = 8 * 1024 * 1024;
/**
 * From this many new messages on, parsing goes to the parse threads; fewer (the usual IDLE wake-up)
 * are parsed on this thread, as starting a thread costs more than they do.
 */
const THREADED_FROM = 20;
/** Batches fetched while earlier ones wait for their commit: memory stays near (2 + this) × BATCH_BYTES. */
const BATCHES_AHEAD = 2;

/** A compact UID set: runs of consecutive UIDs become ranges ("4:9,12"). */
export function uidSet(uids: number[]): string {
  const parts: string[] = [];
  for (let k = 0; k < uids.length; ) {
    let j = k;
    while (j + 1 < uids.length && uids[j + 1] === uids[j]! + 1) j++;
    parts.push(j > k ? `${uids[k]}:${uids[j]}` : String(uids[k]));
    k = j + 1;
  }
  return parts.join(',');
}

/** Messages committed together: their UIDs to download, and the UID the folder state advances to. */
interface Batch {
  uids: number[];
  bytes: number;
  upTo: number;
  /** Already imported (re-sync after a UIDVALIDITY change): not downloaded, counted as skipped. */
  skipped: number;
  jobs: Map<number, { source: Buffer; parsed: Promise<ParsedMessage> }>;
}

type Parsed = FetchedMessage;

export interface FetchResult {
  imported: number;
  skipped: number;
  uidValidityChanged: boolean;
}

export interface FetcherDeps {
  db: Db;
  dataDir: string;
  /** PostgreSQL: large raw messages go to the database in chunks, not to DATA_DIR. */
  rawInDatabase: boolean;
  tokens: TokenManager;
  logger: Logger;
  /** Parses the messages small enough to fetch in chunks (on worker threads when it has any). */
  parser: ParsePool;
  /** Graph requests per mailbox, shared with the outbox (Exchange's MailboxConcurrency). */
  gates?: ConnectionGates;
  now?: () => Date;
  /** INBOUND_MAX_MESSAGE_MB: a larger message is not read past this; it is recorded as refused. */
  maxMessageBytes: number;
  /** Aborted at shutdown: connections close and requests end at once. */
  signal?: AbortSignal;
  /** IMAP_TIMEOUT_SECONDS: how long an IMAP server may stay silent while its answer is due. */
  imapTimeoutMs?: number;
}

export const imapTarget = (s: MailServerRecord): ImapTarget => ({ host: s.imap!.host, port: s.imap!.port, security: s.imap!.security });

/**
 * A large message is downloaded in partial FETCHes of this size (imapflow's default, 64 KB, is 800
 * round trips for 50 MB); one chunk at a time is held.
 */
const DOWNLOAD_CHUNK_BYTES = 1024 * 1024;
/** IMAP_TIMEOUT_SECONDS' default, for callers without the config. */
const DEFAULT_IMAP_TIMEOUT_MS = 60_000;
/** FETCH answers beyond the folder's message count tolerated (mail arriving during the fetch). */
const ANSWER_SLACK = 1000;

/** The size and time bounds of a fetch's IMAP connections. */
export function imapBounds(deps: Pick<FetcherDeps, 'maxMessageBytes' | 'imapTimeoutMs' | 'signal'>): ImapBounds {
  return { maxMessageBytes: deps.maxMessageBytes, timeoutMs: deps.imapTimeoutMs ?? DEFAULT_IMAP_TIMEOUT_MS, ...(deps.signal && { signal: deps.signal }) };
}

/**
 * Logs in with a token from the token manager. A refused token we believed valid gets one forced
 * refresh and one more try (it may have been revoked before its expiry).
 */
export async function connectWithToken(tokens: TokenManager, server: MailServerRecord, bounds?: ImapBounds): Promise<ImapFlow> {
  const first = await tokens.getLogin(server.id);
  try {
    return await openImap(imapTarget(server), first, bounds);
  } catch (e) {
    if (!(e instanceof ImapError && e.isAuthFailure) || first.kind !== 'xoauth2') throw e;
    return openImap(imapTarget(server), await tokens.getLogin(server.id, { forceRefresh: true }), bounds);
  }
}

const isOwnError = (e: unknown) => e instanceof ImapError || (e instanceof Error && 'code' in e && String((e as { code: unknown }).code).startsWith('MR_'));

/** The quarantine text of a message refused for its size. */
function tooLarge(bytes: number | undefined, announced: number | undefined, max: number): MessageProblem {
  if (bytes === undefined) return { code: 'too_large', message: `The message is larger than INBOUND_MAX_MESSAGE_MB (${formatBytes(max)}); it was not downloaded whole.` };
  const lied = announced !== undefined && announced !== bytes ? ` (the server announced ${formatBytes(announced)})` : '';
  return { code: 'too_large', message: `The message is ${formatBytes(bytes)}${lied}, larger than INBOUND_MAX_MESSAGE_MB (${formatBytes(max)}); it was not downloaded.` };
}

/** The quarantine text of a message the parser gave up on. */
function malformed(e: unknown): MessageProblem {
  return { code: 'malformed', message: `Mailroom could not read this message (${String((e as Error)?.message ?? e).slice(0, 300)}); its raw bytes are kept as they came.` };
}

interface Found {
  uid: number;
  messageId: string | undefined;
  /** RFC822.SIZE; undefined when the server gave none or garbage (the message is then fetched alone). */
  size: number | undefined;
}

/**
 * Imports what is new in the server's folder, exactly once: the folder's UIDVALIDITY and last UID are
 * stored with each batch of messages in one transaction, so a crash or restart resumes after the last
 * batch stored. When UIDVALIDITY changes (the mailbox was rebuilt) every UID is new again, and messages
 * already imported are recognised by Message-ID and skipped without being downloaded.
 *
 * Nothing one message holds stops the fetch: a message announced larger than INBOUND_MAX_MESSAGE_MB,
 * or whose literal turns out larger, is recorded as refused without its bytes; one the parser gives up
 * on is stored raw with the parser's reason. A server answer that breaks the protocol fails the fetch
 * with the answer as evidence, after the messages it described properly are imported.
 */
export async function fetchNew(
  deps: FetcherDeps,
  server: MailServerRecord,
  onProgress: (p: { fetched: number; total: number }) => void = () => {},
  opts: { over?: ImapFlow } = {},
): Promise<FetchResult> {
  const { db, logger } = deps;
  const now = () => deps.now?.() ?? new Date();
  const imap = server.imap!;
  const target = imapTarget(server);
  const bounds = imapBounds(deps);
  // The mailbox's IDLE connection, when it has one, is lent for the fetch: imapflow ends IDLE for
  // the commands, and the connection goes back to IDLE after them. No new session, so no TLS
  // handshake and no login for each new message. It was opened with the same size bounds; each
  // command here is bounded in time by IMAP_TIMEOUT_SECONDS (Stall), whatever its socket timeout.
  const lent = opts.over?.usable ? opts.over : undefined;
  let client = lent ?? (await connectWithToken(deps.tokens, server, bounds));
  // What imapflow skipped on this connection before the fetch (while it was IDLE) is not the fetch's.
  if (lent) forgetSkippedAnswers(lent);
  let lock: { release(): void } | undefined;
  let failed = false;
  /** The failure behind an error from imapflow, explained (a refused literal, not the NoConnection that followed). */
  const explain = (e: unknown, stall?: Stall): unknown => {
    if (stall?.failed) return stall.failed;
    if (isOwnError(e)) return e;
    const cause = connectionError(client, e);
    return cause instanceof ImapError ? cause : imapErrorFrom(cause, target);
  };
  /** A command that must be over in IMAP_TIMEOUT_SECONDS, answers or not (a server can chatter without ever finishing). */
  const within = async <T>(what: string, run: () => Promise<T>): Promise<T> => {
    const guard = new Stall(client, target, bounds.timeoutMs, what);
    try {
      return await run();
    } catch (e) {
      throw explain(e, guard);
    } finally {
      guard.end();
    }
  };
  try {
    lock = await within(`did not finish opening ${imap.folder}`, () => client.getMailboxLock(imap.folder));
    // A lent connection has had the folder open since IDLE began: selected again, so UIDVALIDITY and
    // UIDNEXT are the server's now (one round trip; no session to open).
    if (lent) await within(`did not finish opening ${imap.folder}`, () => client.mailboxOpen(imap.folder));
    const box = client.mailbox;
    if (!box) throw new ImapError(`The folder ${imap.folder} could not be opened.`, { kind: 'imap', response: `SELECT ${imap.folder} failed` });
    const uidValidity = String(box.uidValidity);
    /** After a refused answer imapflow has closed the connection: a new one, on the same folder. */
    const reopen = async () => {
      lock?.release();
      lock = undefined;
      client.close();
      client = await connectWithToken(deps.tokens, server, bounds);
      lock = await within(`did not finish opening ${imap.folder}`, () => client.getMailboxLock(imap.folder));
      if (String(client.mailbox && client.mailbox.uidValidity) !== uidValidity) {
        throw new ImapError(`The folder ${imap.folder} changed its UIDVALIDITY during the fetch.`, { kind: 'imap', response: `UIDVALIDITY ${uidValidity} became ${client.mailbox && client.mailbox.uidValidity}` });
      }
    };
    const state = await getFolderState(db, server.id, imap.folder);
    const uidValidityChanged = state !== undefined && state.uidValidity !== uidValidity;
    if (uidValidityChanged) logger.warn({ event: 'inbound.uidvalidity_changed', mailServerId: server.id, folder: imap.folder, from: state.uidValidity, to: uidValidity }, 'folder UIDVALIDITY changed: re-syncing by Message-ID');
    const lastUid = state && !uidValidityChanged ? state.lastUid : 0;
    if (box.uidNext - 1 - lastUid >= THREADED_FROM) deps.parser.warm();

    // Envelopes (Message-ID, size) by UID range: a list of thousands of UIDs would exceed the
    // server's command length (Dovecot: 64 KB, about 10,000 UIDs). "N:*" always matches the highest
    // UID, even below N (RFC 3501 §6.4.8), so filter. A server could answer forever: the answers
    // are bounded by the folder's message count, and each must bring a new UID in time.
    const found: Found[] = [];
    /** Answers that break the protocol (RFC 9051 §7.5.2: a UID FETCH answer carries the UID): reported after the rest is imported. */
    const broken: string[] = [];
    const seen = new Set<number>();
    if (box.exists > 0) {
      const most = box.exists + ANSWER_SLACK;
      let answers = 0;
      const stall = new Stall(client, target, bounds.timeoutMs, 'sent no new message envelope');
      try {
        for await (const m of client.fetch(`${lastUid + 1}:*`, { uid: true, envelope: true, size: true }, { uid: true })) {
          if (++answers > most) {
            throw malformedImap(target, `${target.host} sent more than ${most} FETCH answers for a folder of ${box.exists} messages; Mailroom stopped reading them.`, `UID FETCH ${lastUid + 1}:* (UID RFC822.SIZE ENVELOPE): ${answers} answers, ${seen.size} distinct UIDs`);
          }
          if (!m.uid) {
            if (broken.length < 10) broken.push(`* ${m.seq} FETCH without a usable UID`);
            continue;
          }
          if (m.uid <= lastUid || seen.has(m.uid)) continue;
          seen.add(m.uid);
          stall.progress();
          // imapflow reads a missing or garbled RFC822.SIZE as 0; no real message is 0 bytes.
          const size = typeof m.size === 'number' && m.size > 0 ? m.size : undefined;
          if (size === undefined && broken.length < 10) broken.push(`* ${m.seq} FETCH (UID ${m.uid}) without a usable RFC822.SIZE`);
          found.push({ uid: m.uid, messageId: m.envelope?.messageId?.trim() || undefined, size });
        }
      } catch (e) {
        throw explain(e, stall);
      } finally {
        stall.end();
      }
      // imapflow skips an answer it cannot parse: the UIDs the server has but did not describe
      // readably are found with UID SEARCH, reported, and fetched alone (their size unknown).
      const skippedHere = skippedAnswers(client);
      if (skippedHere.count) {
        broken.push(`${skippedHere.count} FETCH answer${skippedHere.count === 1 ? '' : 's'} that do${skippedHere.count === 1 ? 'es' : ''} not parse: ${skippedHere.sample}`);
        const all = await within('did not finish a UID SEARCH', () => client.search({ uid: `${lastUid + 1}:*` }, { uid: true })).catch(() => false as const);
        if (!all) throw malformedImap(target, `${target.host} sent FETCH answers that are not valid IMAP, and UID SEARCH could not tell which messages they were; nothing was imported.`, broken.join('; '));
        for (const uid of all) if (uid > lastUid && !seen.has(uid) && found.length < most) found.push({ uid, messageId: undefined, size: undefined });
      }
    }
    found.sort((a, b) => a.uid - b.uid);
    // After a UIDVALIDITY change every UID is new: what is already imported is recognised by
    // Message-ID and skipped without being downloaded. Otherwise new UIDs are new messages, and the
    // import transaction still catches a repeat.
    const existing = uidValidityChanged ? await existingDedupeKeys(db, server.id, found.flatMap((f) => (f.messageId ? [f.messageId] : []))) : new Set<string>();
    const known = (f: Found) => !!f.messageId && existing.has(f.messageId);
    /** Streamed alone, not fetched with others: large, or of unknown size. */
    const alone = (f: Found) => !known(f) && (f.size === undefined || f.size > SMALL_MESSAGE_BYTES);
    const webhookIds = (await listWebhooks(db)).filter((w) => w.active).map((w) => w.id);
    let imported = 0;
    let skipped = 0;
    onProgress({ fetched: 0, total: found.length });

    /** UIDs committed whose after-fetch action (mark read, move) is still to be applied. */
    let committedUids: number[] = [];
    const applyAfterFetch = async (uids = committedUids) => {
      committedUids = [];
      for (let k = 0; k < uids.length; k += 500) {
        const slice = uids.slice(k, k + 500);
        if (imap.afterFetch === 'leave' || (await within('did not finish the after-fetch action', () => afterFetch(client, server, slice, logger)))) await clearAfterFetch(db, server.id, imap.folder, uidValidity, slice);
      }
    };
    // What a crash or a failed command left undone last time (mark as read, move) is done first.
    const pending = await pendingAfterFetch(db, server.id, imap.folder);
    if (pending.some((p) => p.uidValidity !== uidValidity)) await clearAfterFetch(db, server.id, imap.folder, uidValidity, 'stale');
    await applyAfterFetch(pending.filter((p) => p.uidValidity === uidValidity).map((p) => p.uid));

    /**
     * Commits the parsed messages of UIDs up to `upTo` in one transaction (UIDs in between that
     * were skipped or vanished advance the folder state too). The after-fetch action follows once
     * the FETCH under way has ended (a command cannot run in the middle of another).
     */
    const commit = async (got: Parsed[], upTo: number, skippedHere: number): Promise<void> => {
      const rows = await inboundRows(db, server, imap.folder, uidValidity, got, deps);
      const outcomes = await importInboundMessages(db, { serverId: server.id, folder: imap.folder, uidValidity, lastUid: upTo }, rows, webhookIds, randomUUID, now()).catch((e: unknown) => {
        throw new MailroomError('MR_INTERNAL', `Fetched mail could not be stored: ${(e as Error).message}`, {
          fix: 'Check the database (free disk space, DATABASE_URL). The messages stay in the mailbox; the next fetch takes them again.',
        });
      });
      rows.forEach((r, k) => {
        if (outcomes[k] === 'imported') {
          imported++;
          // Leave as is: nothing is pending for it, so nothing to apply or clear (no write per fetch).
          if (r.afterFetchPending) committedUids.push(r.uid);
          return;
        }
        if ('path' in r.raw) rmSync(join(deps.dataDir, r.raw.path), { force: true });
        skipped++;
      });
      skipped += skippedHere;
      onProgress({ fetched: imported + skipped, total: found.length });
    };
    /** A message whose bytes Mailroom did not take: imported as refused, with what is known of it. */
    const refuse = (f: Found, problem: MessageProblem, sizeBytes: number, upTo = f.uid, skippedHere = 0) => {
      logger.warn({ event: 'inbound.message_refused', mailServerId: server.id, uid: f.uid, code: problem.code, reason: problem.message }, 'message imported as refused');
      return commit([{ uid: f.uid, id: randomUUID(), parsed: unreadableMessage(problem, { sizeBytes, messageId: f.messageId ?? null }), raw: { none: true } }], upTo, skippedHere);
    };
    const literalRefused = (f: Found, e: ImapError) => refuse(f, tooLarge(e.literalSize ?? deps.maxMessageBytes + 1, f.size, deps.maxMessageBytes), e.literalSize ?? f.size ?? 0);

    // Runs of small messages are streamed with one UID FETCH each (up to SEGMENT_MESSAGES); every
    // body goes to the parse pool as it arrives. The messages are committed in batches, one
    // transaction each with their raw bytes, one batch after another in UID order, so the stored
    // last UID is always exact. While too many batches wait for their commit the FETCH is not read
    // further (imapflow then stops reading the socket). A large message is streamed alone to a
    // file, so it never sits whole in memory.
    const parse = found.length >= THREADED_FROM ? (b: Buffer) => deps.parser.parse(b) : parseMessage;
    let chain: Promise<void> = Promise.resolve();
    /** Up to this index of `found`, messages are fetched one per UID FETCH: a literal past the limit was refused among them. */
    let isolate = 0;
    try {
      for (let i = 0; i < found.length; ) {
        const head = found[i]!;
        if (!known(head) && head.size !== undefined && head.size > deps.maxMessageBytes) {
          // Announced larger than the limit: not downloaded at all.
          i++;
          await chain;
          await refuse(head, tooLarge(head.size, undefined, deps.maxMessageBytes), head.size);
          await applyAfterFetch();
          continue;
        }
        if (alone(head)) {
          i++;
          await chain;
          await downloadAlone(head);
          await applyAfterFetch();
          continue;
        }

        // Plan the segment's batches: each takes up to BATCH_MESSAGES messages (BATCH_BYTES) to
        // download, plus the already-imported ones around them that only advance the UID.
        const batches: Array<Batch & { from: number }> = [];
        const batchOf = new Map<number, Batch>();
        const wanted: number[] = [];
        const segmentLimit = i < isolate ? 1 : SEGMENT_MESSAGES;
        let batch: (Batch & { from: number }) | undefined;
        while (i < found.length && wanted.length < segmentLimit) {
          const f = found[i]!;
          if (alone(f) || (!known(f) && f.size! > deps.maxMessageBytes)) break;
          if (!batch || batch.uids.length >= BATCH_MESSAGES || batch.bytes >= BATCH_BYTES) batches.push((batch = { uids: [], bytes: 0, upTo: 0, skipped: 0, jobs: new Map(), from: i }));
          if (known(f)) batch.skipped++;
          else {
            batch.uids.push(f.uid);
            batch.bytes += f.size!;
            batchOf.set(f.uid, batch);
            wanted.push(f.uid);
          }
          batch.upTo = f.uid;
          i++;
        }
        const segmentEnd = i;

        let next = 0; // the first batch not yet handed to the commit chain
        const inFlight: Array<Promise<void>> = [];
        const byUid = new Map(found.slice(batches[0]?.from ?? i, segmentEnd).map((f) => [f.uid, f]));
        const schedule = (all: boolean) => {
          while (next < batches.length && (all || batches[next]!.jobs.size === batches[next]!.uids.length)) {
            const b = batches[next++]!;
            chain = chain.then(async () => {
              const got: Parsed[] = [];
              for (const uid of b.uids) {
                const job = b.jobs.get(uid);
                if (!job) continue; // vanished between the envelope and the body fetch (expunged)
                // A parser that gives up (or a parse thread that dies) quarantines this message, raw kept.
                const parsed = await job.parsed.catch((e: unknown) => {
                  logger.warn({ event: 'inbound.message_unreadable', mailServerId: server.id, uid, err: (e as Error)?.message }, 'message stored raw: it could not be parsed');
                  return unreadableMessage(malformed(e), { sizeBytes: job.source.length, messageId: byUid.get(uid)?.messageId ?? null, sha256: createHash('sha256').update(job.source).digest('hex') });
                });
                got.push({ uid, id: randomUUID(), parsed, raw: { mime: job.source } });
              }
              await commit(got, b.upTo, b.skipped + b.uids.length - b.jobs.size);
              b.jobs.clear();
            });
            chain.catch(() => undefined); // awaited below
            inFlight.push(chain);
          }
        };
        if (wanted.length) {
          const stall = new Stall(client, target, bounds.timeoutMs, 'sent no new message during a FETCH');
          // Answers for UIDs not asked for, or asked for and already received: a server repeating
          // itself forever would otherwise keep this loop going.
          let idle = 0;
          try {
            for await (const m of client.fetch(uidSet(wanted), { uid: true, source: true }, { uid: true })) {
              const b = m.uid ? batchOf.get(m.uid) : undefined;
              if (!m.source || !b || b.jobs.has(m.uid)) {
                if (++idle > wanted.length + ANSWER_SLACK) {
                  throw malformedImap(target, `${target.host} sent more than ${wanted.length + ANSWER_SLACK} FETCH answers that bring no asked-for message; Mailroom stopped reading them.`, `UID FETCH ${uidSet(wanted).slice(0, 100)} (UID BODY.PEEK[]): ${idle} answers without a new message, the last for UID ${m.uid ?? 'none'}`);
                }
                continue;
              }
              stall.progress();
              const parsed = parse(m.source);
              parsed.catch(() => undefined); // awaited in UID order by the commit chain
              b.jobs.set(m.uid, { source: m.source, parsed });
              schedule(false);
              // Waiting for this side's own commits is not the server's silence.
              if (inFlight.length > BATCHES_AHEAD) stall.end();
              while (inFlight.length > BATCHES_AHEAD) await inFlight.shift();
              stall.progress();
            }
          } catch (e) {
            const err = explain(e, stall);
            if (!isTooLarge(err)) throw err;
            // One answer was past the literal or response limit, and imapflow closed the
            // connection there. The batches received whole are committed; the rest of the segment
            // is fetched again one UID at a time, so the message that was too large is found and
            // refused alone and the ones after it are imported.
            await chain;
            const rest = batches.slice(next);
            if (wanted.length === 1 && rest.length === 1) {
              await reopen();
              const f = byUid.get(wanted[0]!)!;
              await literalRefused(f, err as ImapError).then(() => commit([], rest[0]!.upTo, rest[0]!.skipped));
            } else {
              logger.warn({ event: 'inbound.answer_refused', mailServerId: server.id, uids: uidSet(wanted).slice(0, 200), err: (err as Error).message }, 'a FETCH answer was past the limits: fetching those messages one at a time');
              await reopen();
              if (rest.length) i = rest[0]!.from;
              isolate = segmentEnd;
            }
            await applyAfterFetch();
            continue;
          } finally {
            stall.end();
          }
        }
        schedule(true);
        await chain;
        await applyAfterFetch();
      }
    } catch (e) {
      // Let a commit already under way finish before the connection closes and a retry begins.
      await chain.catch(() => undefined);
      throw e;
    }
    // Nothing new: the folder's state is written only when it is new or its UIDVALIDITY changed (no
    // commit for each of a thousand mailboxes' empty looks).
    if (!found.length && (!state || uidValidityChanged)) await setFolderState(db, server.id, imap.folder, { uidValidity, lastUid }, now());
    if (broken.length) {
      throw malformedImap(target, `${target.host} described ${broken.length === 10 ? 'at least 10 messages' : broken.length === 1 ? 'a message' : `${broken.length} messages`} in a way IMAP does not allow (${broken[0]}); ${imported} other message${imported === 1 ? ' was' : 's were'} imported.`, broken.join('; '));
    }
    return { imported, skipped, uidValidityChanged };

    /** A large message (or one of unknown size), streamed to storage alone. */
    async function downloadAlone(f: Found): Promise<void> {
      const id = randomUUID();
      let stored: Awaited<ReturnType<typeof storeRaw>> | undefined;
      // Each chunk must come in time: a server trickling a large message is cut off like a silent one.
      const stall = new Stall(client, target, bounds.timeoutMs, 'sent no more of a large message');
      try {
        // A byte past the limit is enough to know: a server sending more than it announced (or
        // announcing nothing) is not read further.
        try {
          const dl = await client.download(String(f.uid), undefined, { uid: true, maxBytes: deps.maxMessageBytes + 1, chunkSize: DOWNLOAD_CHUNK_BYTES });
          if (dl.content) {
            dl.content.on('data', () => stall.progress());
            stored = await storeRaw(dl.content, deps, server.id, id);
          }
        } finally {
          stall.end();
        }
        if (!stored) return await commit([], f.uid, 1); // expunged since the envelope FETCH
        if (stored.sizeBytes > deps.maxMessageBytes) {
          await discardRaw(deps, stored.raw, id);
          await reopen();
          return refuse(f, tooLarge(undefined, f.size, deps.maxMessageBytes), f.size ?? stored.sizeBytes);
        }
      } catch (e) {
        const err = explain(e, stall);
        if (isTooLarge(err)) {
          await reopen();
          return literalRefused(f, err as ImapError);
        }
        if (isOwnError(e) || connectionFailed(client)) throw err;
        // The connection is fine, so the parser gave up on the message: the connection is
        // mid-FETCH, so a new one follows.
        rmSync(join(deps.dataDir, 'inbound', server.id, `${id}.eml.part`), { force: true });
        await reopen();
        return refuse(f, malformed(e), f.size ?? 0);
      }
      const { raw, ...parsed } = stored;
      await commit([{ uid: f.uid, id, parsed, raw }], f.uid, 0).catch(async (e: unknown) => {
        await discardRaw(deps, raw, id);
        throw e;
      });
    }
  } catch (e) {
    failed = true;
    throw explain(e);
  } finally {
    lock?.release();
    // After a failure the connection may sit mid-command (a FETCH still answering, or silent): a
    // LOGOUT would queue behind it, so it is closed (a lent IDLE connection too: its owner opens a
    // new one). A lent connection that served the fetch goes back to IDLE at once.
    if (failed || !client.usable) client.close();
    else if (client === lent) void client.idle({ whenFree: true }).catch(() => undefined);
    else await client.logout().catch(() => client.close());
  }
}

/**
 * The admin's choice for fetched mail. A failure is logged and the messages stay marked pending (they
 * are stored already): the next fetch tries again.
 */
async function afterFetch(client: ImapFlow, server: MailServerRecord, uids: number[], logger: Logger): Promise<boolean> {
  const imap = server.imap!;
  const uid = uidSet(uids);
  try {
    if (imap.afterFetch === 'mark_read') await client.messageFlagsAdd(uid, ['\\Seen'], { uid: true });
    else if (imap.afterFetch === 'move' && imap.moveToFolder) {
      const moved = await client.messageMove(uid, imap.moveToFolder, { uid: true }).catch(() => false);
      if (!moved) {
        await client.mailboxCreate(imap.moveToFolder).catch(() => undefined);
        await client.messageMove(uid, imap.moveToFolder, { uid: true });
      }
    }
    return true;
  } catch (e) {
    logger.warn({ event: 'inbound.after_fetch_failed', mailServerId: server.id, uid, action: imap.afterFetch, err: (e as Error).message }, 'could not apply the after-fetch action; the next fetch tries again');
    return false;
  }
}

/** Test & Confirm: log in, open the folder, count its messages. */
export async function probeImap(tokens: TokenManager, server: MailServerRecord, bounds?: ImapBounds): Promise<{ messages: number; unseen: number | undefined }> {
  const client = await connectWithToken(tokens, server, bounds);
  try {
    const st = await client.status(server.imap!.folder, { messages: true, unseen: true });
    if (!st) throw new ImapError(`The folder ${server.imap!.folder} does not exist.`, { kind: 'imap', response: `STATUS ${server.imap!.folder} failed` });
    return { messages: st.messages ?? 0, unseen: st.unseen };
  } catch (e) {
    const cause = connectionError(client, e);
    throw cause instanceof ImapError ? cause : imapErrorFrom(cause, imapTarget(server));
  } finally {
    await client.logout().catch(() => client.close());
  }
}
