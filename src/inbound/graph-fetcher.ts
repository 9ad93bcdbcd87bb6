import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { MailroomError } from '../errors/errors.ts';
import { checkLink, downloadTimeoutMs, GraphError, type GraphRequest, graphCall, graphRequest, invalidResponse, limitError, processGraphResponse, userPath, withGraphToken, grantedPermissions, missingPermission } from '../graph/graph-client.ts';
import { formatBytes, PeerLimitError } from '../net/bounded-fetch.ts';
import { isDatabaseUnavailable } from '../storage/database.ts';
import { clearAfterFetch, existingDedupeKeys, getFolderState, importInboundMessages, pendingRemoteAfterFetch } from '../storage/inbound-store.ts';
import { findToken, type MailServerRecord, tokenRowId } from '../storage/mail-server-store.ts';
import { listWebhooks } from '../storage/webhook-store.ts';
import { GRAPH_MAILBOX_CONCURRENCY, withGraphMailbox } from '../graph/graph-sender.ts';
import { type FetchedMessage, inboundRows } from './inbound-rows.ts';
import type { FetcherDeps, FetchResult } from './mailbox-fetcher.ts';
import { discardRaw, type ParsedMessage, storeRaw, unreadableMessage } from './parse-message.ts';

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
export function tokenOf(deps: Pick<FetcherDeps, 'tokens'>, server: MailServerRecord): (forceRefresh: boolean) => Promise<string> {
  let token: string | undefined;
  return async (forceRefresh) => (!forceRefresh && token) || (token = (await deps.tokens.getAccessToken(server.id, { forceRefresh })).accessToken);
}

/** Graph JSON requests with that token, each holding a slot of the mailbox's Graph gate (none while Graph's Retry-After pauses it). */
export function caller(deps: Pick<FetcherDeps, 'gates' | 'signal'> & { graphHost: string }, server: MailServerRecord, token: (forceRefresh: boolean) => Promise<string>): Call {
  return <T>(r: Omit<GraphRequest, 'token'>) =>
    withGraphMailbox(deps.gates, server.username, () => withGraphToken(token, (t) => graphCall<T>(deps.graphHost, { ...r, token: t, ...(deps.signal && { signal: deps.signal }) })));
}

/** A delta page as Graph documents it; anything else is an InvalidResponse and nothing of it is used. */
interface DeltaPage {
  ids: string[];
  next: string | undefined;
  delta: string | undefined;
}

export function deltaPage(host: string, body: Record<string, unknown>): DeltaPage {
  const what = 'GET delta';
  const value = body.value;
  if (!Array.isArray(value)) throw invalidResponse(what, `"value" is ${value === undefined ? 'missing' : `${typeof value} ${JSON.stringify(value).slice(0, 40)}`}, not an array of messages`);
  const ids: string[] = [];
  value.forEach((v: unknown, k) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalidResponse(what, `value[${k}] is ${Array.isArray(v) ? 'an array' : v === null ? 'null' : typeof v}, not a message`);
    const m = v as { id?: unknown; '@removed'?: unknown };
    if (typeof m.id !== 'string' || !m.id) throw invalidResponse(what, `value[${k}].id is ${m.id === undefined ? 'missing' : typeof m.id}, not a string`);
    if (!m['@removed']) ids.push(m.id);
  });
  const next = body['@odata.nextLink'] === undefined ? undefined : checkLink(host, body['@odata.nextLink'], '@odata.nextLink of GET delta');
  const delta = body['@odata.deltaLink'] === undefined ? undefined : checkLink(host, body['@odata.deltaLink'], '@odata.deltaLink of GET delta');
  if (!next && !delta) throw invalidResponse(what, 'the page has neither @odata.nextLink nor @odata.deltaLink');
  return { ids: [...new Set(ids)], next, delta };
}

/** The folder's Graph id: INBOX is the well-known "inbox"; other names are looked up (top-level folders). */
export async function folderId(call: Call, mailbox: string, name: string, create = false): Promise<string> {
  if (name.toUpperCase() === 'INBOX') return 'inbox';
  const q = encodeURIComponent(`displayName eq '${name.replace(/'/g, "''")}'`);
  const found = await call<{ value?: unknown }>({ method: 'GET', path: `${userPath(mailbox)}/mailFolders?$filter=${q}` });
  if (!Array.isArray(found.value)) throw invalidResponse('GET /mailFolders', `"value" is ${found.value === undefined ? 'missing' : typeof found.value}, not an array of folders`);
  const first = found.value[0] as { id?: unknown } | undefined;
  if (first !== undefined) {
    if (typeof first?.id !== 'string' || !first.id) throw invalidResponse('GET /mailFolders', 'the folder has no id');
    return first.id;
  }
  if (!create) throw new GraphError({ kind: 'graph', status: 404, code: 'ErrorFolderNotFound', message: `The folder ${name} does not exist in ${mailbox}.`, request: 'GET /mailFolders' });
  const made = await call<{ id?: unknown }>({ method: 'POST', path: `${userPath(mailbox)}/mailFolders`, body: { displayName: name } });
  if (typeof made.id !== 'string' || !made.id) throw invalidResponse('POST /mailFolders', 'the new folder has no id');
  return made.id;
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
  // A link stored before links were checked may name another host: it is refused like a fresh one.
  if (state?.deltaLink) checkLink(deps.graphHost, state.deltaLink, 'The stored @odata.deltaLink');
  let link = state?.deltaLink ?? `${base}/mailFolders/${encodeURIComponent(await folderId(call, server.username, imap.folder))}/messages/delta?$select=id,subject,isRead,internetMessageId`;
  let lastUid = state?.lastUid ?? 0;
  const webhookIds = (await listWebhooks(db)).filter((w) => w.active).map((w) => w.id);
  let imported = 0;
  let skipped = 0;
  for (;;) {
    // Shape and links are checked before anything of the page is used: a bad page commits nothing.
    const page = deltaPage(
      deps.graphHost,
      await call<Record<string, unknown>>({
        method: 'GET',
        path: link,
        headers: { prefer: `IdType="ImmutableId", odata.maxpagesize=${PAGE_SIZE}` },
      }),
    );
    const ids = page.ids;
    // Read-state changes (ours included) come back as changed messages: already imported, not downloaded.
    const known = await existingDedupeKeys(db, server.id, ids.map((id) => `graph:${id}`));
    const fresh = ids.filter((id) => !known.has(`graph:${id}`));
    skipped += ids.length - fresh.length;
    const got: FetchedMessage[] = new Array(fresh.length);
    const files: Array<Pick<FetchedMessage, 'id' | 'raw'>> = [];
    try {
      for (let k = 0; k < fresh.length; k += DOWNLOADS_AT_ONCE) {
        // Settled, not raced: a failed download must not leave the others writing files after the cleanup below.
        const results = await Promise.allSettled(
          fresh.slice(k, k + DOWNLOADS_AT_ONCE).map(async (remoteId, j) => {
            got[k + j] = await download(deps, token, server, remoteId, lastUid + k + j + 1, files);
          }),
        );
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
      }
      const next = (page.next ?? page.delta)!;
      for (const g of got) if (g.parsed.problem) deps.logger.warn({ event: 'inbound.unreadable', mailServerId: server.id, remoteId: g.remoteId, code: g.parsed.problem.code, problem: g.parsed.problem.message }, 'message imported without being read whole');
      const rows = await inboundRows(db, server, imap.folder, GRAPH_STATE, got, deps);
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
    if (!page.next) break;
  }
  return { imported, skipped, uidValidityChanged: false };
}

const VALUE = 'GET /messages/{id}/$value';

/** The answer was cut at INBOUND_MAX_MESSAGE_MB (declared or streamed): the message is too large, not the run broken. */
function isTooLarge(e: unknown): boolean {
  return (e instanceof PeerLimitError && e.limit === 'size') || (e instanceof GraphError && e.evidence.code === 'ResponseTooLarge');
}

/** A failure of the exchange or of this process, not of the message: the run fails and the message is tried again. */
function isRunFailure(e: unknown): boolean {
  return e instanceof PeerLimitError || e instanceof GraphError || isDatabaseUnavailable(e) || (e as Error)?.name === 'AbortError' || (e as { code?: unknown })?.code === 'MR_GRAPH_UNREACHABLE';
}

const tooLarge = (limit: number, declared: number): ParsedMessage =>
  unreadableMessage(
    { code: 'too_large', message: `The message is larger than ${formatBytes(limit)}, the largest inbound message (INBOUND_MAX_MESSAGE_MB); Mailroom stopped downloading it and kept no content.` },
    { sizeBytes: Number.isFinite(declared) && declared > limit ? declared : limit + 1 },
  );

const malformed = (e: unknown, sizeBytes: number): ParsedMessage =>
  unreadableMessage({ code: 'malformed', message: `The message could not be read as MIME: ${String((e as Error)?.message ?? e).slice(0, 300)}` }, { sizeBytes });

/**
 * One message's raw MIME, up to INBOUND_MAX_MESSAGE_MB: kept in memory when small, streamed to storage
 * and parsed on the way when large. A message larger than the limit is imported without content,
 * marked too_large; one that cannot be parsed is imported as it is (raw kept when small), marked
 * malformed: either way the fetch goes on past it. The exchange failing (Graph, the deadline, shutdown)
 * fails the run instead, and the message is fetched again next time.
 */
async function download(
  deps: FetcherDeps & { graphHost: string },
  token: (forceRefresh: boolean) => Promise<string>,
  server: MailServerRecord,
  remoteId: string,
  uid: number,
  files: Array<Pick<FetchedMessage, 'id' | 'raw'>>,
): Promise<FetchedMessage> {
  const limit = deps.maxMessageBytes;
  const id = randomUUID();
  // The slot is held until the body has been read: the response streams while Exchange counts it.
  return withGraphMailbox(deps.gates, server.username, async () => {
    const path = `${userPath(server.username)}/messages/${encodeURIComponent(remoteId)}/$value`;
    let r: Response;
    try {
      r = await withGraphToken(token, async (t) => {
        const res = await graphRequest(deps.graphHost, { method: 'GET', path, token: t, headers: { prefer: 'IdType="ImmutableId"' }, maxBytes: limit, timeoutMs: downloadTimeoutMs(limit), ...(deps.signal && { signal: deps.signal }) });
        if (!res.ok) await processGraphResponse(res, VALUE);
        return res;
      });
    } catch (e) {
      if (isTooLarge(e)) return { uid, id, parsed: tooLarge(limit, NaN), raw: { none: true }, remoteId };
      throw e;
    }
    const size = Number(r.headers.get('content-length') ?? NaN);
    if (!r.body || (Number.isFinite(size) && size <= SMALL_MESSAGE_BYTES)) {
      let mime: Buffer;
      try {
        mime = Buffer.from(await r.arrayBuffer());
      } catch (e) {
        if (isTooLarge(e)) return { uid, id, parsed: tooLarge(limit, size), raw: { none: true }, remoteId };
        throw e instanceof PeerLimitError ? limitError(e, VALUE, r.status) : e;
      }
      const parsed = await deps.parser.parse(mime).catch((e: unknown) => malformed(e, mime.length));
      return { uid, id, parsed, raw: { mime }, remoteId };
    }
    const source = Readable.fromWeb(r.body as unknown as WebReadableStream);
    try {
      const { raw, ...parsed } = await storeRaw(source, deps, server.id, id);
      files.push({ id, raw });
      return { uid, id, parsed, raw, remoteId };
    } catch (e) {
      // Stop the download and remove what was written of it.
      source.destroy();
      await discardRaw(deps, deps.rawInDatabase ? { chunked: true } : { path: join('inbound', server.id, `${id}.eml.part`) }, id);
      if (isTooLarge(e)) return { uid, id, parsed: tooLarge(limit, size), raw: { none: true }, remoteId };
      // The disk or the database failed, not the message: the run fails and the message waits in the mailbox.
      if ((e as NodeJS.ErrnoException)?.syscall !== undefined) {
        throw new MailroomError('MR_INTERNAL', `A fetched message could not be stored: ${(e as Error).message}`, { fix: 'Check free disk space and the permissions of DATA_DIR. The message stays in the mailbox; the next fetch takes it again.' });
      }
      if (isRunFailure(e)) throw e instanceof PeerLimitError ? limitError(e, VALUE, r.status) : e;
      return { uid, id, parsed: malformed(e, Number.isFinite(size) ? size : 0), raw: { none: true }, remoteId };
    }
  });
}

/** Test & Confirm through Graph: a Graph token, the folder found, Mail.ReadWrite granted; its message count. */
export async function probeGraph(deps: Pick<FetcherDeps, 'tokens' | 'db' | 'gates'> & { graphHost: string }, server: MailServerRecord): Promise<{ messages: number; unseen: number | undefined }> {
  const call = caller(deps, server, tokenOf(deps, server));
  const id = await folderId(call, server.username, server.imap!.folder);
  const f = await call<{ totalItemCount?: number; unreadItemCount?: number }>({ method: 'GET', path: `${userPath(server.username)}/mailFolders/${encodeURIComponent(id)}` });
  const granted = grantedPermissions((await findToken(deps.db, tokenRowId(server)))?.scope);
  if (!granted.includes('Mail.ReadWrite')) throw missingPermission(granted, 'Mail.ReadWrite');
  return { messages: f.totalItemCount ?? 0, unseen: f.unreadItemCount };
}
