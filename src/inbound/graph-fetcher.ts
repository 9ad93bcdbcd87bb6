import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { MailroomError } from '../errors/errors.ts';
import { GraphError, type GraphRequest, graphCall, graphRequest, processGraphResponse, userPath, withGraphToken, grantedPermissions, missingPermission } from '../graph/graph-client.ts';
import { clearAfterFetch, existingDedupeKeys, getFolderState, importInboundMessages, pendingRemoteAfterFetch } from '../storage/inbound-store.ts';
import { findToken, type MailServerRecord } from '../storage/mail-server-store.ts';
import { listWebhooks } from '../storage/webhook-store.ts';
import { GRAPH_MAILBOX_CONCURRENCY, graphGateKey, withSlot } from '../graph/graph-sender.ts';
import { type FetchedMessage, inboundRows } from './inbound-rows.ts';
import type { FetcherDeps, FetchResult } from './mailbox-fetcher.ts';
import { discardRaw, storeRaw } from './parse-message.ts';

/** Marks Graph-fetched rows in the folder state, where IMAP keeps a UIDVALIDITY. */
const GRAPH_STATE = 'graph';
/** Messages per delta page (Prefer: odata.maxpagesize); each page is one import transaction. */
const PAGE_SIZE = 50;
/** Above this the raw message is streamed to a file instead of kept in the database, as for IMAP. */
const SMALL_MESSAGE_BYTES = 512 * 1024;
/** Downloads at once: Exchange serves 4 concurrent requests per mailbox (the gate holds them to it with the outbox's). */
const DOWNLOADS_AT_ONCE = GRAPH_MAILBOX_CONCURRENCY;

type Call = <T>(r: Omit<GraphRequest, 'token'>) => Promise<T>;

/** The server's access token, fetched once per run (again only when Graph refuses it). */
function tokenOf(deps: Pick<FetcherDeps, 'tokens'>, server: MailServerRecord): (forceRefresh: boolean) => Promise<string> {
  let token: string | undefined;
  return async (forceRefresh) => (!forceRefresh && token) || (token = (await deps.tokens.getAccessToken(server.id, { forceRefresh })).accessToken);
}

const gateOf = (deps: Pick<FetcherDeps, 'gates'>, server: MailServerRecord) => deps.gates?.for(graphGateKey(server.username), GRAPH_MAILBOX_CONCURRENCY);

/** Graph JSON requests with that token, each holding a slot of the mailbox's Graph gate. */
function caller(deps: Pick<FetcherDeps, 'gates'> & { graphHost: string }, server: MailServerRecord, token: (forceRefresh: boolean) => Promise<string>): Call {
  const gate = gateOf(deps, server);
  return <T>(r: Omit<GraphRequest, 'token'>) => withSlot(gate, () => withGraphToken(token, (t) => graphCall<T>(deps.graphHost, { ...r, token: t })));
}

/** The folder's Graph id: INBOX is the well-known "inbox"; other names are looked up (top-level folders). */
async function folderId(call: Call, mailbox: string, name: string, create = false): Promise<string> {
  if (name.toUpperCase() === 'INBOX') return 'inbox';
  const q = encodeURIComponent(`displayName eq '${name.replace(/'/g, "''")}'`);
  const found = await call<{ value: Array<{ id: string }> }>({ method: 'GET', path: `${userPath(mailbox)}/mailFolders?$filter=${q}` });
  if (found.value[0]) return found.value[0].id;
  if (!create) throw new GraphError({ kind: 'graph', status: 404, code: 'ErrorFolderNotFound', message: `The folder ${name} does not exist in ${mailbox}.`, request: 'GET /mailFolders' });
  return (await call<{ id: string }>({ method: 'POST', path: `${userPath(mailbox)}/mailFolders`, body: { displayName: name } })).id;
}

/** The admin's choice for fetched mail, message by message (Graph has no bulk form); false if it failed. */
async function afterFetch(call: Call, server: MailServerRecord, remoteIds: string[], deps: FetcherDeps): Promise<boolean> {
  const imap = server.imap!;
  const base = userPath(server.username);
  try {
    const target = imap.afterFetch === 'move' && imap.moveToFolder ? await folderId(call, server.username, imap.moveToFolder, true) : undefined;
    for (const id of remoteIds) {
      const path = `${base}/messages/${encodeURIComponent(id)}`;
      const headers = { prefer: 'IdType="ImmutableId"' };
      if (imap.afterFetch === 'mark_read') await call({ method: 'PATCH', path, body: { isRead: true }, headers });
      else if (target) await call({ method: 'POST', path: `${path}/move`, body: { destinationId: target }, headers });
    }
    return true;
  } catch (e) {
    deps.logger.warn({ event: 'inbound.after_fetch_failed', mailServerId: server.id, action: imap.afterFetch, err: (e as Error).message }, 'could not apply the after-fetch action; the next fetch tries again');
    return false;
  }
}

/**
 * Imports what is new in the folder through Microsoft Graph, exactly once: a delta query on the folder
 * (`Prefer: IdType="ImmutableId"`, so ids survive moves), each page's new messages downloaded as raw
 * MIME (`/messages/{id}/$value`), parsed like IMAP mail and committed in one transaction with the link
 * the next query starts from (the page's @odata.nextLink, or the round's @odata.deltaLink). A restart
 * resumes from the last committed link; a message seen again is recognised by its immutable id.
 */
export async function fetchNewGraph(
  deps: FetcherDeps & { graphHost: string },
  server: MailServerRecord,
  onProgress: (p: { fetched: number; total: number }) => void = () => {},
): Promise<FetchResult> {
  const { db } = deps;
  const now = () => deps.now?.() ?? new Date();
  const imap = server.imap!;
  const token = tokenOf(deps, server);
  const call = caller(deps, server, token);
  const base = userPath(server.username);

  // What a crash or a failed request left undone last time (mark as read, move) is done first.
  const pending = await pendingRemoteAfterFetch(db, server.id, imap.folder);
  if (pending.length && (imap.afterFetch === 'leave' || (await afterFetch(call, server, pending.map((p) => p.remoteId), deps)))) {
    await clearAfterFetch(db, server.id, imap.folder, GRAPH_STATE, pending.map((p) => p.uid));
  }

  const state = await getFolderState(db, server.id, imap.folder);
  let link = state?.deltaLink ?? `${base}/mailFolders/${encodeURIComponent(await folderId(call, server.username, imap.folder))}/messages/delta?$select=id,subject,isRead,internetMessageId`;
  let lastUid = state?.lastUid ?? 0;
  const webhookIds = (await listWebhooks(db)).filter((w) => w.active).map((w) => w.id);
  let imported = 0;
  let skipped = 0;
  for (;;) {
    const page = await call<{ value: Array<{ id?: string; '@removed'?: unknown }>; '@odata.nextLink'?: string; '@odata.deltaLink'?: string }>({
      method: 'GET',
      path: link,
      headers: { prefer: `IdType="ImmutableId", odata.maxpagesize=${PAGE_SIZE}` },
    });
    const ids = [...new Set(page.value.filter((v) => !v['@removed'] && typeof v.id === 'string').map((v) => v.id!))];
    // Read-state changes (ours included) come back as changed messages: already imported, not downloaded.
    const known = await existingDedupeKeys(db, server.id, ids.map((id) => `graph:${id}`));
    const fresh = ids.filter((id) => !known.has(`graph:${id}`));
    skipped += ids.length - fresh.length;
    const got: FetchedMessage[] = new Array(fresh.length);
    const files: Array<Pick<FetchedMessage, 'id' | 'raw'>> = [];
    try {
      for (let k = 0; k < fresh.length; k += DOWNLOADS_AT_ONCE) {
        await Promise.all(
          fresh.slice(k, k + DOWNLOADS_AT_ONCE).map(async (remoteId, j) => {
            got[k + j] = await download(deps, token, server, remoteId, lastUid + k + j + 1, files);
          }),
        );
      }
      const next = page['@odata.nextLink'] ?? page['@odata.deltaLink'];
      if (!next) throw new GraphError({ kind: 'graph', status: 200, code: 'InvalidDeltaResponse', message: 'The delta page has neither @odata.nextLink nor @odata.deltaLink.', request: 'GET delta' });
      const rows = await inboundRows(db, server, imap.folder, GRAPH_STATE, got);
      lastUid += got.length;
      const outcomes = await importInboundMessages(db, { serverId: server.id, folder: imap.folder, uidValidity: GRAPH_STATE, lastUid, deltaLink: next }, rows, webhookIds, randomUUID, now()).catch((e: unknown) => {
        throw new MailroomError('MR_INTERNAL', `Fetched mail could not be stored: ${(e as Error).message}`, {
          fix: 'Check the database (free disk space, DATABASE_URL). The messages stay in the mailbox; the next fetch takes them again.',
        });
      });
      // Committed: from here on the stored raw messages belong to their rows, except those of
      // messages that were already imported, which nothing refers to.
      const stored = files.splice(0);
      for (const f of stored) if (outcomes[rows.findIndex((r) => r.id === f.id)] !== 'imported') await discardRaw(deps, f.raw, f.id);
      const done = rows.filter((_, k) => outcomes[k] === 'imported');
      imported += done.length;
      skipped += rows.length - done.length;
      onProgress({ fetched: imported + skipped, total: imported + skipped });
      if (done.length && imap.afterFetch !== 'leave' && (await afterFetch(call, server, done.map((r) => r.remoteId!), deps))) {
        await clearAfterFetch(db, server.id, imap.folder, GRAPH_STATE, done.map((r) => r.uid));
      }
      link = next;
    } catch (e) {
      for (const f of files) await discardRaw(deps, f.raw, f.id);
      throw e;
    }
    if (!page['@odata.nextLink']) break;
  }
  return { imported, skipped, uidValidityChanged: false };
}

/** One message's raw MIME: kept in memory when small, streamed to a file and parsed on the way when large. */
async function download(
  deps: FetcherDeps & { graphHost: string },
  token: (forceRefresh: boolean) => Promise<string>,
  server: MailServerRecord,
  remoteId: string,
  uid: number,
  files: Array<Pick<FetchedMessage, 'id' | 'raw'>>,
): Promise<FetchedMessage> {
  // The slot is held until the body has been read: the response streams while Exchange counts it.
  return withSlot(gateOf(deps, server), async () => {
    const path = `${userPath(server.username)}/messages/${encodeURIComponent(remoteId)}/$value`;
    const r = await withGraphToken(token, async (t) => {
      const res = await graphRequest(deps.graphHost, { method: 'GET', path, token: t, headers: { prefer: 'IdType="ImmutableId"' } });
      if (!res.ok || !res.body) await processGraphResponse(res, 'GET /messages/{id}/$value');
      return res;
    });
    const id = randomUUID();
    const size = Number(r.headers.get('content-length') ?? NaN);
    if (Number.isFinite(size) && size <= SMALL_MESSAGE_BYTES) {
      const mime = Buffer.from(await r.arrayBuffer());
      return { uid, id, parsed: await deps.parser.parse(mime), raw: { mime }, remoteId };
    }
    const { raw, ...parsed } = await storeRaw(Readable.fromWeb(r.body as unknown as WebReadableStream), deps, server.id, id);
    files.push({ id, raw });
    return { uid, id, parsed, raw, remoteId };
  });
}

/** Test & Confirm through Graph: a Graph token, the folder found, Mail.ReadWrite granted; its message count. */
export async function probeGraph(deps: Pick<FetcherDeps, 'tokens' | 'db' | 'gates'> & { graphHost: string }, server: MailServerRecord): Promise<{ messages: number; unseen: number | undefined }> {
  const call = caller(deps, server, tokenOf(deps, server));
  const id = await folderId(call, server.username, server.imap!.folder);
  const f = await call<{ totalItemCount?: number; unreadItemCount?: number }>({ method: 'GET', path: `${userPath(server.username)}/mailFolders/${encodeURIComponent(id)}` });
  const granted = grantedPermissions((await findToken(deps.db, server.tokenSourceId ?? server.id))?.scope);
  if (!granted.includes('Mail.ReadWrite')) throw missingPermission(granted, 'Mail.ReadWrite');
  return { messages: f.totalItemCount ?? 0, unseen: f.unreadItemCount };
}
