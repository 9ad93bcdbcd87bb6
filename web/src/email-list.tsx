import { useCallback, useEffect, useMemo, useState, type FormEvent, type MouseEvent } from 'react';
import { api, type MailServer, type Message, type MessageFilters, type MessageState } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
import { formatDateTime, formatDateTimeShort } from './format-date-time.ts';
import { isPending, MESSAGE_STATE_LABELS, MESSAGE_STATES, MessageStateBadge, OutcomeBadge } from './message-state-badge.tsx';
import { Notice } from './notice.tsx';
import { Link, navigate, useLocation } from './router.tsx';
import { emailPath, paths } from './routes.ts';
import { SendMessageExample } from './send-message-example.tsx';
import { receivedViaText } from './received-via-text.ts';
import { serverReply } from './server-reply.ts';
import { Spinner } from './spinner.tsx';
import { usePagedList } from './use-paged-list.ts';
import { useTitle } from './use-title.ts';

const SEARCH_DELAY_MS = 300;

type FilterName = 'state' | 'mailServerId' | 'q';

/** Queued and sending messages change by themselves: the list refreshes meanwhile. */
const anyPending = (items: Message[]) => items.some((m) => isPending(m.state));

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
          <MessageStateBadge state={m.state} /> <OutcomeBadge outcome={m.outcome} />
        </td>
        <td className="message-subject">
          <Link to={emailPath(m.id)}>{m.subject || '(no subject)'}</Link>
          {m.receivedVia && <div className="muted received-via">{receivedViaText(m)}</div>}
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

  const fetchPage = useCallback((cursor: string | null) => api.listMessages(filters, cursor), [filters]);
  const list = usePagedList(fetchPage, JSON.stringify([state, mailServerId, q]), anyPending);
  const { items, loading, error, loadingMore, moreError, refreshError, loadMore } = list;
  const pending = items ? anyPending(items) : false;

  // Typing in Search filters after a short pause.
  useEffect(() => {
    if (search.trim() === q.trim()) return;
    const t = window.setTimeout(() => setFilters({ q: search.trim() }), SEARCH_DELAY_MS);
    return () => window.clearTimeout(t);
  }, [search, q]);

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
              {list.nextCursor ? ' shown' : ''}
            </span>
            {list.nextCursor && (
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
