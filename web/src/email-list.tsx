import { useEffect, useMemo, useRef, useState, type FormEvent, type MouseEvent } from 'react';
import { api, ApiError, type MailServer, type Message, type MessageFilters, type MessageState } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
import { formatDateTime, formatDateTimeShort } from './format-date-time.ts';
import { isPending, MESSAGE_STATE_LABELS, MESSAGE_STATES, MessageStateBadge } from './message-state-badge.tsx';
import { Notice } from './notice.tsx';
import { Link, navigate, useLocation } from './router.tsx';
import { emailPath, paths } from './routes.ts';
import { SendMessageExample } from './send-message-example.tsx';
import { serverReply } from './server-reply.ts';
import { Spinner } from './spinner.tsx';
import { useTitle } from './use-title.ts';

/** How often the list is read again while some of its messages are queued or sending. */
const REFRESH_MS = 5000;
const SEARCH_DELAY_MS = 300;

type FilterName = 'state' | 'mailServerId' | 'q';

interface LoadedList {
  items: Message[];
  nextCursor: string | null;
  /** Pages loaded so far ("Load more" adds one); a refresh reads the same number again. */
  pages: number;
}

function asApiError(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError(0, { message: String(e) });
}

/** Append `more` to `items`, skipping messages already listed (pages shift when new mail is queued). */
function mergeById(items: Message[], more: Message[]): Message[] {
  const seen = new Set(items.map((m) => m.id));
  return [...items, ...more.filter((m) => !seen.has(m.id))];
}

/** Failed, held and queued-for-retry messages show their last error under the row. */
function showsError(m: Message): boolean {
  return m.lastError !== null && (m.state === 'failed' || m.state === 'held' || m.state === 'queued');
}

function isMessageState(s: string): s is MessageState {
  return (MESSAGE_STATES as string[]).includes(s);
}

function setFilters(changes: Partial<Record<FilterName, string>>) {
  const query = new URLSearchParams(window.location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v) query.set(k, v);
    else query.delete(k);
  }
  const qs = query.toString();
  navigate(qs ? `${paths.emails}?${qs}` : paths.emails, { replace: true });
}

function Recipients({ to }: { to: string[] }) {
  const [first, ...rest] = to;
  if (first === undefined) return <span className="muted">—</span>;
  return (
    <span className="recipients" title={to.join(', ')}>
      <span className="message-address">{first}</span>
      {rest.length > 0 && <span className="muted"> +{rest.length}</span>}
    </span>
  );
}

function MessageRows({ message: m, onOpen }: { message: Message; onOpen: (e: MouseEvent<HTMLElement>) => void }) {
  const error = showsError(m) ? m.lastError : null;
  const reply = error ? serverReply(error) : '';
  return (
    <tbody className="message-group">
      <tr className="clickable" onClick={onOpen}>
        <td>
          <MessageStateBadge state={m.state} />
        </td>
        <td className="message-subject">
          <Link to={emailPath(m.id)}>{m.subject || '(no subject)'}</Link>
        </td>
        <td>
          <Recipients to={m.to} />
        </td>
        <td>
          <span className="message-address" title={m.from}>
            {m.from}
          </span>
        </td>
        <td className="message-server">{m.mailServerName ?? <span className="muted">—</span>}</td>
        <td className="num">
          {m.attempts}
          <span className="muted"> / {m.maxAttempts}</span>
        </td>
        <td className="nowrap" title={formatDateTime(m.createdAt)}>
          {formatDateTimeShort(m.createdAt)}
        </td>
      </tr>
      {error && (
        <tr className="message-error-row clickable" onClick={onOpen}>
          <td />
          <td colSpan={reply ? 2 : 6} className="message-error">
            <span className="visually-hidden">Error: </span>
            {error.message}
          </td>
          {reply && (
            <td colSpan={4} className="server-reply">
              <details>
                <summary title={reply}>
                  <span className="visually-hidden">Server reply: </span>
                  <code>{reply}</code>
                </summary>
              </details>
            </td>
          )}
        </tr>
      )}
    </tbody>
  );
}

/** Settings › Technical › Emails: the outbox, newest first. */
export function EmailList() {
  useTitle('Emails');
  const { query } = useLocation();
  const stateParam = query.get('state') ?? '';
  const state: MessageState | '' = isMessageState(stateParam) ? stateParam : '';
  const mailServerId = query.get('mailServerId') ?? '';
  const q = query.get('q') ?? '';
  const filters = useMemo<MessageFilters>(() => ({ state, mailServerId, q }), [state, mailServerId, q]);
  const filtered = state !== '' || mailServerId !== '' || q.trim() !== '';

  const [search, setSearch] = useState(q);
  const [servers, setServers] = useState<MailServer[] | null>(null);
  const [list, setList] = useState<LoadedList | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<ApiError | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const [moreError, setMoreError] = useState<ApiError | null>(null);
  const [refreshError, setRefreshError] = useState<ApiError | null>(null);

  // Answers to requests made for other filters, or after the page closed, are dropped.
  const generation = useRef(0);
  // A refresh started before "Load more" finished would drop the new page: it is discarded instead.
  const pageVersion = useRef(0);
  const listRef = useRef(list);
  listRef.current = list;

  useEffect(() => {
    let cancelled = false;
    api.listMailServers().then(
      (r) => !cancelled && setServers(r.items),
      () => !cancelled && setServers([]),
    );
    return () => {
      cancelled = true;
    };
  }, []);

  useEffect(() => {
    const g = ++generation.current;
    setLoading(true);
    setLoadingMore(false);
    setMoreError(null);
    api.listMessages(filters).then(
      (page) => {
        if (g !== generation.current) return;
        pageVersion.current++;
        setList({ items: page.items, nextCursor: page.nextCursor, pages: 1 });
        setError(null);
        setRefreshError(null);
        setLoading(false);
      },
      (e: unknown) => {
        if (g !== generation.current) return;
        setError(asApiError(e));
        setLoading(false);
      },
    );
    return () => {
      generation.current++;
    };
  }, [filters]);

  // Typing in Search filters after a short pause.
  useEffect(() => {
    if (search.trim() === q.trim()) return;
    const t = window.setTimeout(() => setFilters({ q: search.trim() }), SEARCH_DELAY_MS);
    return () => window.clearTimeout(t);
  }, [search, q]);

  async function refresh() {
    const current = listRef.current;
    if (!current) return;
    const g = generation.current;
    const version = pageVersion.current;
    try {
      let items: Message[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page = await api.listMessages(filters, cursor);
        items = mergeById(items, page.items);
        cursor = page.nextCursor;
        pages++;
      } while (cursor && pages < current.pages);
      if (g !== generation.current || version !== pageVersion.current) return;
      setList({ items, nextCursor: cursor, pages });
      setRefreshError(null);
    } catch (e) {
      if (g === generation.current) setRefreshError(asApiError(e));
    }
  }

  const pending = list?.items.some((m) => isPending(m.state)) ?? false;

  useEffect(() => {
    if (!pending) return;
    let stopped = false;
    let timer = 0;
    const tick = async () => {
      if (!document.hidden) await refresh();
      if (!stopped) timer = window.setTimeout(tick, REFRESH_MS);
    };
    timer = window.setTimeout(tick, REFRESH_MS);
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
    // refresh reads the current list through listRef; what it asks for only changes with the filters.
  }, [pending, filters]);

  async function loadMore() {
    const cursor = list?.nextCursor;
    if (!cursor) return;
    const g = generation.current;
    setLoadingMore(true);
    setMoreError(null);
    try {
      const page = await api.listMessages(filters, cursor);
      if (g !== generation.current) return;
      pageVersion.current++;
      setList((l) => l && { items: mergeById(l.items, page.items), nextCursor: page.nextCursor, pages: l.pages + 1 });
    } catch (e) {
      if (g === generation.current) setMoreError(asApiError(e));
    } finally {
      if (g === generation.current) setLoadingMore(false);
    }
  }

  function submitSearch(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    if (search.trim() !== q.trim()) setFilters({ q: search.trim() });
  }

  function clearFilters() {
    setSearch('');
    navigate(paths.emails, { replace: true });
  }

  function openRow(e: MouseEvent<HTMLElement>, id: string) {
    // Let links, the server reply toggle, text selection and modified clicks behave normally.
    if ((e.target as HTMLElement).closest('a, button, summary, details') || window.getSelection()?.toString()) return;
    navigate(emailPath(id));
  }

  const serverMissing = mailServerId !== '' && servers !== null && !servers.some((s) => s.id === mailServerId);
  const items = list?.items ?? null;

  return (
    <>
      <div className="page-header">
        <div>
          <p className="breadcrumb">Settings / Technical</p>
          <h1>Emails</h1>
        </div>
      </div>

      <form className="card filters" role="search" aria-label="Filter emails" onSubmit={submitSearch}>
        <div className="filter">
          <label htmlFor="emails-state">State</label>
          <select id="emails-state" value={state} onChange={(e) => setFilters({ state: e.target.value })}>
            <option value="">All</option>
            {MESSAGE_STATES.map((s) => (
              <option key={s} value={s}>
                {MESSAGE_STATE_LABELS[s]}
              </option>
            ))}
          </select>
        </div>
        <div className="filter filter-wide">
          <label htmlFor="emails-search">Search</label>
          <input
            id="emails-search"
            type="search"
            placeholder="Subject or address"
            autoComplete="off"
            spellCheck={false}
            value={search}
            onChange={(e) => setSearch(e.target.value)}
          />
        </div>
        <div className="filter">
          <label htmlFor="emails-mail-server">Mail Server</label>
          <select
            id="emails-mail-server"
            value={mailServerId}
            onChange={(e) => setFilters({ mailServerId: e.target.value })}
          >
            <option value="">All</option>
            {serverMissing && <option value={mailServerId}>Unknown mail server</option>}
            {servers?.map((s) => (
              <option key={s.id} value={s.id}>
                {s.name || s.username}
              </option>
            ))}
          </select>
        </div>
        <div className="filter-status" aria-live="polite">
          {loading && items && (
            <span className="muted">
              <Spinner /> Loading…
            </span>
          )}
          {!loading && pending && (
            <span className="muted">Refreshing every 5 seconds while emails are queued or sending.</span>
          )}
        </div>
      </form>

      {error && <ErrorAlert problem={error} />}
      {refreshError && !error && (
        <Notice kind="warning">Automatic refresh failed: {refreshError.message} The list may be out of date.</Notice>
      )}
      {!items && !error && <p className="loading">Loading…</p>}

      {items && items.length === 0 && !filtered && (
        <div className="card empty-state">
          <p className="empty-title">No emails yet.</p>
          <p className="muted">
            Applications queue messages through the API with an <Link to={paths.apiKeys}>API key</Link>; they appear
            here with their state and, when delivery fails, the mail server’s reply. For example:
          </p>
          <SendMessageExample from={servers?.[0]?.username} />
        </div>
      )}
      {items && items.length === 0 && filtered && (
        <div className="card empty-state">
          <p className="empty-title">No emails match these filters.</p>
          <button type="button" className="btn btn-secondary" onClick={clearFilters}>
            Clear filters
          </button>
        </div>
      )}

      {items && items.length > 0 && (
        <>
          <div className="card table-card">
            <table className="list-table message-table" aria-busy={loading || undefined}>
              <thead>
                <tr>
                  <th scope="col">State</th>
                  <th scope="col">Subject</th>
                  <th scope="col">To</th>
                  <th scope="col">From</th>
                  <th scope="col">Mail Server</th>
                  <th scope="col" className="num">
                    Attempts
                  </th>
                  <th scope="col">Created</th>
                </tr>
              </thead>
              {items.map((m) => (
                <MessageRows key={m.id} message={m} onOpen={(e) => openRow(e, m.id)} />
              ))}
            </table>
          </div>
          {moreError && <ErrorAlert problem={moreError} />}
          <div className="list-footer">
            <span className="muted">
              {items.length} {items.length === 1 ? 'email' : 'emails'}
              {list?.nextCursor ? ' shown' : ''}
            </span>
            {list?.nextCursor && (
              <button
                type="button"
                className="btn btn-secondary"
                onClick={loadMore}
                disabled={loadingMore}
                aria-busy={loadingMore || undefined}
              >
                {loadingMore && <Spinner />}
                Load more
              </button>
            )}
          </div>
        </>
      )}
    </>
  );
}
