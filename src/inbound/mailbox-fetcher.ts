import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import type { ImapFlow } from 'imapflow';
import type { Logger } from '../logger.ts';
import type { TokenManager } from '../oauth/token-manager.ts';
import { ImapError, imapErrorFrom, openImap, type ImapTarget } from '../imap/imap-session.ts';
import type { Db } from '../storage/database.ts';
import { getFolderState, hasDedupeKey, importInboundMessages, type NewInboundMessage, setFolderState } from '../storage/inbound-store.ts';
import type { MailServerRecord } from '../storage/mail-server-store.ts';
import { findOutboxIdByMessageIds } from '../storage/outbox-store.ts';
import { listWebhooks } from '../storage/webhook-store.ts';
import { type ParsedMessage, storeAndParse } from './parse-message.ts';

/** Above this, a message is streamed alone instead of fetched in a batch. */
const SMALL_MESSAGE_BYTES = 512 * 1024;
const BATCH_MESSAGES = 50;
const BATCH_BYTES = 8 * 1024 * 1024;
const PARSE_CONCURRENCY = 4;

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const k = next++;
        out[k] = await fn(items[k]!);
      }
    }),
  );
  return out;
}

export interface FetchResult {
  imported: number;
  skipped: number;
  uidValidityChanged: boolean;
}

export interface FetcherDeps {
  db: Db;
  dataDir: string;
  tokens: TokenManager;
  logger: Logger;
  now?: () => Date;
}

export const imapTarget = (s: MailServerRecord): ImapTarget => ({ host: s.imap!.host, port: s.imap!.port, security: s.imap!.security });

/**
 * Logs in with a token from the token manager. A refused token we believed valid gets one forced
 * refresh and one more try (it may have been revoked before its expiry).
 */
export async function connectWithToken(tokens: TokenManager, server: MailServerRecord): Promise<ImapFlow> {
  const first = await tokens.getAccessToken(server.id);
  try {
    return await openImap(imapTarget(server), first.user, first.accessToken);
  } catch (e) {
    if (!(e instanceof ImapError && e.isAuthFailure)) throw e;
    const again = await tokens.getAccessToken(server.id, { forceRefresh: true });
    return openImap(imapTarget(server), again.user, again.accessToken);
  }
}

/**
 * Imports what is new in the server's folder, exactly once: the folder's UIDVALIDITY and last UID are
 * stored with each message in one transaction, so a crash or restart resumes after the last message
 * stored. When UIDVALIDITY changes (the mailbox was rebuilt) every UID is new again, and messages
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
      // After a UIDVALIDITY change every UID is new: skip what is already imported without downloading
      // it. Otherwise new UIDs are new messages, and the import transaction still catches a repeat.
      const resync = uidValidityChanged;

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
      const uids = found.map((f) => f.uid);
      const webhookIds = (await listWebhooks(db)).filter((w) => w.active).map((w) => w.id);
      let imported = 0;
      let skipped = 0;
      onProgress({ fetched: 0, total: found.length });

      const toRow = async (uid: number, id: string, parsed: ParsedMessage): Promise<NewInboundMessage> => ({
        id,
        serverId: server.id,
        folder: imap.folder,
        uidValidity,
        uid,
        dedupeKey: parsed.messageId ?? `sha256:${parsed.sha256}`,
        messageId: parsed.messageId,
        from: parsed.from,
        to: parsed.to,
        cc: parsed.cc,
        subject: parsed.subject,
        date: parsed.date,
        inReplyTo: parsed.inReplyTo,
        references: parsed.references,
        text: parsed.text,
        html: parsed.html,
        attachments: parsed.attachments,
        sizeBytes: parsed.sizeBytes,
        rawPath: parsed.rawPath,
        outboxMessageId: (await findOutboxIdByMessageIds(db, [parsed.inReplyTo, ...parsed.references].filter((x): x is string => !!x))) ?? null,
      });
      /** Commits messages (in UID order) in one transaction, then applies the after-fetch action. */
      const commit = async (rows: NewInboundMessage[]): Promise<void> => {
        const outcomes = await importInboundMessages(db, rows, webhookIds, randomUUID, now());
        for (let k = 0; k < rows.length; k++) {
          if (outcomes[k] === 'duplicate') {
            rmSync(join(deps.dataDir, rows[k]!.rawPath), { force: true });
            skipped++;
          } else {
            imported++;
            await afterFetch(client, server, rows[k]!.uid, logger);
          }
        }
        onProgress({ fetched: imported + skipped, total: found.length });
      };
      const skip = async (uid: number) => {
        await setFolderState(db, server.id, imap.folder, { uidValidity, lastUid: uid }, now());
        skipped++;
        onProgress({ fetched: imported + skipped, total: found.length });
      };

      // Small messages come in batches (one round trip per batch) and are parsed and written in
      // parallel; large ones are streamed one at a time so they never sit whole in memory. Commits
      // stay one per message, in UID order, so the stored last UID is always exact.
      for (let i = 0; i < found.length; ) {
        const head = found[i]!;
        if (resync && head.messageId && (await hasDedupeKey(db, server.id, head.messageId))) {
          await skip(head.uid);
          i++;
          continue;
        }
        if (head.size > SMALL_MESSAGE_BYTES) {
          const dl = await client.download(String(head.uid), undefined, { uid: true });
          if (!dl.content) await skip(head.uid);
          else {
            const id = randomUUID();
            await commit([await toRow(head.uid, id, await storeAndParse(dl.content, deps.dataDir, server.id, id))]);
          }
          i++;
          continue;
        }
        const batch: typeof found = [];
        let bytes = 0;
        while (i < found.length && batch.length < BATCH_MESSAGES && bytes < BATCH_BYTES) {
          const f = found[i]!;
          if (f.size > SMALL_MESSAGE_BYTES || (resync && f.messageId && (await hasDedupeKey(db, server.id, f.messageId)))) break;
          batch.push(f);
          bytes += f.size;
          i++;
        }
        const sources = new Map<number, Buffer>();
        for await (const m of client.fetch(batch.map((b) => b.uid).join(','), { uid: true, source: true }, { uid: true })) {
          if (m.source) sources.set(m.uid, m.source);
        }
        const parsed = await mapLimit(batch, PARSE_CONCURRENCY, async (b) => {
          const source = sources.get(b.uid);
          if (!source) return undefined;
          const id = randomUUID();
          return { id, parsed: await storeAndParse(Readable.from([source]), deps.dataDir, server.id, id) };
        });
        // A message that vanished between the envelope and the body fetch (expunged) ends the batch
        // early: everything before it commits together, so the stored last UID stays exact.
        const rows: NewInboundMessage[] = [];
        for (let k = 0; k < batch.length; k++) {
          const p = parsed[k];
          if (p) {
            rows.push(await toRow(batch[k]!.uid, p.id, p.parsed));
            continue;
          }
          if (rows.length) await commit(rows.splice(0));
          await skip(batch[k]!.uid);
        }
        if (rows.length) await commit(rows);
      }
      if (!uids.length) await setFolderState(db, server.id, imap.folder, { uidValidity, lastUid }, now());
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

/** The admin's choice for fetched mail; a failure here is logged, the message is already stored. */
async function afterFetch(client: ImapFlow, server: MailServerRecord, uid: number, logger: Logger): Promise<void> {
  const imap = server.imap!;
  try {
    if (imap.afterFetch === 'mark_read') await client.messageFlagsAdd(String(uid), ['\\Seen'], { uid: true });
    else if (imap.afterFetch === 'move' && imap.moveToFolder) {
      const moved = await client.messageMove(String(uid), imap.moveToFolder, { uid: true }).catch(() => false);
      if (!moved) {
        await client.mailboxCreate(imap.moveToFolder).catch(() => undefined);
        await client.messageMove(String(uid), imap.moveToFolder, { uid: true });
      }
    }
  } catch (e) {
    logger.warn({ event: 'inbound.after_fetch_failed', mailServerId: server.id, uid, action: imap.afterFetch, err: (e as Error).message }, 'could not apply the after-fetch action');
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
