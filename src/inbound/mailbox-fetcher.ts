import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ImapFlow } from 'imapflow';
import { MailroomError } from '../errors/errors.ts';
import type { ConnectionGates } from '../smtp/connection-gate.ts';
import type { Logger } from '../logger.ts';
import type { TokenManager } from '../oauth/token-manager.ts';
import { ImapError, imapErrorFrom, openImap, type ImapTarget } from '../imap/imap-session.ts';
import type { Db } from '../storage/database.ts';
import { clearAfterFetch, existingDedupeKeys, getFolderState, importInboundMessages, pendingAfterFetch, type NewInboundMessage, setFolderState } from '../storage/inbound-store.ts';
import type { MailServerRecord } from '../storage/mail-server-store.ts';
import { listWebhooks } from '../storage/webhook-store.ts';
import { type FetchedMessage, inboundRows } from './inbound-rows.ts';
import { discardRaw, type ParsedMessage, parseMessage, storeRaw } from './parse-message.ts';
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
}

export const imapTarget = (s: MailServerRecord): ImapTarget => ({ host: s.imap!.host, port: s.imap!.port, security: s.imap!.security });

/**
 * Logs in with a token from the token manager. A refused token we believed valid gets one forced
 * refresh and one more try (it may have been revoked before its expiry).
 */
export async function connectWithToken(tokens: TokenManager, server: MailServerRecord): Promise<ImapFlow> {
  const first = await tokens.getLogin(server.id);
  try {
    return await openImap(imapTarget(server), first);
  } catch (e) {
    if (!(e instanceof ImapError && e.isAuthFailure) || first.kind !== 'xoauth2') throw e;
    return openImap(imapTarget(server), await tokens.getLogin(server.id, { forceRefresh: true }));
  }
}

/**
 * Imports what is new in the server's folder, exactly once: the folder's UIDVALIDITY and last UID are
 * stored with each batch of messages in one transaction, so a crash or restart resumes after the last
 * batch stored. When UIDVALIDITY changes (the mailbox was rebuilt) every UID is new again, and messages
 * already imported are recognised by Message-ID and skipped without being downloaded.
 */
export async function fetchNew(
  deps: FetcherDeps,
  server: MailServerRecord,
  onProgress: (p: { fetched: number; total: number }) => void = () => {},
): Promise<FetchResult> {
  const { db, logger } = deps;
  const now = () => deps.now?.() ?? new Date();
  const imap = server.imap!;
  const client = await connectWithToken(deps.tokens, server);
  try {
    const lock = await client.getMailboxLock(imap.folder);
    try {
      const box = client.mailbox;
      if (!box) throw new ImapError(`The folder ${imap.folder} could not be opened.`, { kind: 'imap', response: `SELECT ${imap.folder} failed` });
      const uidValidity = String(box.uidValidity);
      const state = await getFolderState(db, server.id, imap.folder);
      const uidValidityChanged = state !== undefined && state.uidValidity !== uidValidity;
      if (uidValidityChanged) logger.warn({ event: 'inbound.uidvalidity_changed', mailServerId: server.id, folder: imap.folder, from: state.uidValidity, to: uidValidity }, 'folder UIDVALIDITY changed: re-syncing by Message-ID');
      const lastUid = state && !uidValidityChanged ? state.lastUid : 0;
      if (box.uidNext - 1 - lastUid >= THREADED_FROM) deps.parser.warm();

      // Envelopes (Message-ID, size) by UID range: a list of thousands of UIDs would exceed the
      // server's command length (Dovecot: 64 KB, about 10,000 UIDs). "N:*" always matches the highest
      // UID, even below N (RFC 3501 §6.4.8), so filter.
      const found: Array<{ uid: number; messageId: string | undefined; size: number }> = [];
      if (box.exists > 0) {
        for await (const m of client.fetch(`${lastUid + 1}:*`, { uid: true, envelope: true, size: true }, { uid: true })) {
          if (m.uid > lastUid) found.push({ uid: m.uid, messageId: m.envelope?.messageId?.trim() || undefined, size: m.size ?? 0 });
        }
      }
      found.sort((a, b) => a.uid - b.uid);
      // After a UIDVALIDITY change every UID is new: what is already imported is recognised by
      // Message-ID and skipped without being downloaded. Otherwise new UIDs are new messages, and the
      // import transaction still catches a repeat.
      const existing = uidValidityChanged ? await existingDedupeKeys(db, server.id, found.flatMap((f) => (f.messageId ? [f.messageId] : []))) : new Set<string>();
      const known = (f: (typeof found)[number]) => !!f.messageId && existing.has(f.messageId);
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
          if (imap.afterFetch === 'leave' || (await afterFetch(client, server, slice, logger))) await clearAfterFetch(db, server.id, imap.folder, uidValidity, slice);
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
        const rows = await inboundRows(db, server, imap.folder, uidValidity, got);
        const outcomes = await importInboundMessages(db, { serverId: server.id, folder: imap.folder, uidValidity, lastUid: upTo }, rows, webhookIds, randomUUID, now()).catch((e: unknown) => {
          throw new MailroomError('MR_INTERNAL', `Fetched mail could not be stored: ${(e as Error).message}`, {
            fix: 'Check the database (free disk space, DATABASE_URL). The messages stay in the mailbox; the next fetch takes them again.',
          });
        });
        rows.forEach((r, k) => {
          if (outcomes[k] === 'imported') {
            imported++;
            committedUids.push(r.uid);
            return;
          }
          if ('path' in r.raw) rmSync(join(deps.dataDir, r.raw.path), { force: true });
          skipped++;
        });
        skipped += skippedHere;
        onProgress({ fetched: imported + skipped, total: found.length });
      };

      // Runs of small messages are streamed with one UID FETCH each (up to SEGMENT_MESSAGES); every
      // body goes to the parse pool as it arrives. The messages are committed in batches, one
      // transaction each with their raw bytes, one batch after another in UID order, so the stored
      // last UID is always exact. While too many batches wait for their commit the FETCH is not read
      // further (imapflow then stops reading the socket). A large message is streamed alone to a
      // file, so it never sits whole in memory.
      const parse = found.length >= THREADED_FROM ? (b: Buffer) => deps.parser.parse(b) : parseMessage;
      let chain: Promise<void> = Promise.resolve();
      try {
        for (let i = 0; i < found.length; ) {
          const head = found[i]!;
          if (head.size > SMALL_MESSAGE_BYTES && !known(head)) {
            i++;
            await chain;
            const dl = await client.download(String(head.uid), undefined, { uid: true });
            if (!dl.content) {
              await commit([], head.uid, 1);
              continue;
            }
            const id = randomUUID();
            const { raw, ...parsed } = await storeRaw(dl.content, deps, server.id, id);
            await commit([{ uid: head.uid, id, parsed, raw }], head.uid, 0).catch(async (e: unknown) => {
              await discardRaw(deps, raw, id);
              throw e;
            });
            await applyAfterFetch();
            continue;
          }

          // Plan the segment's batches: each takes up to BATCH_MESSAGES messages (BATCH_BYTES) to
          // download, plus the already-imported ones around them that only advance the UID.
          const batches: Batch[] = [];
          const batchOf = new Map<number, Batch>();
          const wanted: number[] = [];
          let batch: Batch | undefined;
          while (i < found.length && wanted.length < SEGMENT_MESSAGES) {
            const f = found[i]!;
            if (f.size > SMALL_MESSAGE_BYTES && !known(f)) break;
            if (!batch || batch.uids.length >= BATCH_MESSAGES || batch.bytes >= BATCH_BYTES) batches.push((batch = { uids: [], bytes: 0, upTo: 0, skipped: 0, jobs: new Map() }));
            if (known(f)) batch.skipped++;
            else {
              batch.uids.push(f.uid);
              batch.bytes += f.size;
              batchOf.set(f.uid, batch);
              wanted.push(f.uid);
            }
            batch.upTo = f.uid;
            i++;
          }

          let next = 0; // the first batch not yet handed to the commit chain
          const inFlight: Array<Promise<void>> = [];
          const schedule = (all: boolean) => {
            while (next < batches.length && (all || batches[next]!.jobs.size === batches[next]!.uids.length)) {
              const b = batches[next++]!;
              chain = chain.then(async () => {
                const got: Parsed[] = [];
                for (const uid of b.uids) {
                  const job = b.jobs.get(uid);
                  if (!job) continue; // vanished between the envelope and the body fetch (expunged)
                  const parsed = await job.parsed.catch((e: unknown) => {
                    throw new MailroomError('MR_INTERNAL', `Message UID ${uid} in ${imap.folder} could not be read: ${(e as Error).message}`, {
                      fix: 'The message stays in the mailbox and the next fetch tries it again. If this repeats, move that message out of the folder and report it.',
                    });
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
            for await (const m of client.fetch(uidSet(wanted), { uid: true, source: true }, { uid: true })) {
              const b = batchOf.get(m.uid);
              if (!m.source || !b || b.jobs.has(m.uid)) continue;
              const parsed = parse(m.source);
              parsed.catch(() => undefined); // awaited in UID order by the commit chain
              b.jobs.set(m.uid, { source: m.source, parsed });
              schedule(false);
              while (inFlight.length > BATCHES_AHEAD) await inFlight.shift();
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
      if (!found.length) await setFolderState(db, server.id, imap.folder, { uidValidity, lastUid }, now());
      return { imported, skipped, uidValidityChanged };
    } finally {
      lock.release();
    }
  } catch (e) {
    throw e instanceof ImapError ? e : e instanceof Error && 'code' in e && String((e as { code: unknown }).code).startsWith('MR_') ? e : imapErrorFrom(e, imapTarget(server));
  } finally {
    await client.logout().catch(() => client.close());
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
export async function probeImap(tokens: TokenManager, server: MailServerRecord): Promise<{ messages: number; unseen: number | undefined }> {
  const client = await connectWithToken(tokens, server);
  try {
    const st = await client.status(server.imap!.folder, { messages: true, unseen: true });
    if (!st) throw new ImapError(`The folder ${server.imap!.folder} does not exist.`, { kind: 'imap', response: `STATUS ${server.imap!.folder} failed` });
    return { messages: st.messages ?? 0, unseen: st.unseen };
  } catch (e) {
    throw e instanceof ImapError ? e : imapErrorFrom(e, imapTarget(server));
  } finally {
    await client.logout().catch(() => client.close());
  }
}
