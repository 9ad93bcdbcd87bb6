import { useCallback, useEffect, useState, type FormEvent, type MouseEvent } from 'react';
import { api, type IncomingServer, type InboundMessage } from './api.ts';
import { DeliveryStateBadge } from './delivery-state-badge.tsx';
import { ErrorAlert } from './error-alert.tsx';
import { formatDateTime, formatDateTimeShort } from './format-date-time.ts';
import { MessageProblemBadge } from './message-problem-badge.tsx';
import { Notice } from './notice.tsx';
import { Link, navigate, useLocation } from './router.tsx';
import { emailPath, incomingMessagePath, paths } from './routes.ts';
import { Spinner } from './spinner.tsx';
import { usePagedList } from './use-paged-list.ts';
import { useTitle } from './use-title.ts';

const SEARCH_DELAY_MS = 300;

type FilterName = 'serverId' | 'q';

function setFilters(changes: Partial<Record<FilterName, string>>) {
  const query = new URLSearchParams(window.location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v) query.set(k, v);
    else query.delete(k);
  }
  const qs = query.toString();
  navigate(qs ? `${paths.incomingMessages}?${qs}` : paths.incomingMessages, { replace: true });
}

/** Webhook deliveries still on their way change by themselves: the list refreshes meanwhile. */
const anyPending = (items: InboundMessage[]) => items.some((m) => m.delivery.state === 'pending');

/** Settings › Technical › Incoming Messages: what the incoming mail servers fetched, newest first. */
export function IncomingMessageList() {
  useTitle('Incoming Messages');
  const { query } = useLocation();
  const serverId = query.get('serverId') ?? '';
  const q = query.get('q') ?? '';
  const filtered = serverId !== '' || q.trim() !== '';

  const [search, setSearch] = useState(q);
  const [servers, setServers] = useState<IncomingServer[] | null>(null);

  const fetchPage = useCallback(
    (cursor: string | null) => api.listInboundMessages({ serverId, q }, cursor),
    [serverId, q],
  );
  const list = usePagedList(fetchPage, JSON.stringify([serverId, q.trim()]), anyPending);
  const items = list.items;
  const pending = items ? anyPending(items) : false;

  useEffect(() => {
    let cancelled = false;
    api.listIncomingServers().then(
      (r) => !cancelled && setServers(r.items),
      () => !cancelled && setServers([]),
    );
    return () => {
      cancelled = true;
    };
  }, []);

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
    navigate(paths.incomingMessages, { replace: true });
  }

  function openRow(e: MouseEvent<HTMLElement>, id: string) {
    // Let links, text selection and modified clicks behave normally.
    if ((e.target as HTMLElement).closest('a, button') || window.getSelection()?.toString()) return;
    navigate(incomingMessagePath(id));
  }

  const serverMissing = serverId !== '' && servers !== null && !servers.some((s) => s.id === serverId);

  return (
    <>
      <div className="page-header">
        <div>
          <p className="breadcrumb">Settings / Technical</p>
          <h1>Incoming Messages</h1>
        </div>
      </div>

      <form className="card filters" role="search" aria-label="Filter incoming messages" onSubmit={submitSearch}>
        <div className="filter filter-wide">
          <label htmlFor="incoming-messages-search">Search</label>
          <input
            id="incoming-messages-search"
            type="search"
            placeholder="Subject or address"
            autoComplete="off"
            spellCheck={false}
            value={search}
            onChange={(e) => setSearch(e.target.value)}
          />
        </div>
        <div className="filter filter-medium">
          <label htmlFor="incoming-messages-server">Incoming Mail Server</label>
          <select id="incoming-messages-server" value={serverId} onChange={(e) => setFilters({ serverId: e.target.value })}>
            <option value="">All</option>
            {serverMissing && <option value={serverId}>Unknown incoming mail server</option>}
            {servers?.map((s) => (
              <option key={s.id} value={s.id}>
                {s.name || s.username}
              </option>
            ))}
          </select>
        </div>
        <div className="filter-status" aria-live="polite">
          {list.loading && items && (
            <span className="muted">
              <Spinner /> Loading…
            </span>
          )}
          {!list.loading && pending && (
            <span className="muted">Refreshing every 5 seconds while webhook deliveries are pending.</span>
          )}
        </div>
      </form>

      {list.error && <ErrorAlert problem={list.error} />}
      {list.refreshError && !list.error && (
        <Notice kind="warning">
          Automatic refresh failed: {list.refreshError.message} The list may be out of date.
        </Notice>
      )}
      {!items && !list.error && <p className="loading">Loading…</p>}

      {items && items.length === 0 && !filtered && (
        <div className="card empty-state">
          <p className="empty-title">No incoming messages yet.</p>
          <p className="muted">
            Messages appear here once an <Link to={paths.incomingMailServers}>incoming mail server</Link> has fetched
            them (use Fetch Now to read the mailbox right away). Each one is posted to your{' '}
            <Link to={paths.webhooks}>webhooks</Link>.
          </p>
        </div>
      )}
      {items && items.length === 0 && filtered && (
        <div className="card empty-state">
          <p className="empty-title">No incoming messages match these filters.</p>
          <button type="button" className="btn btn-secondary" onClick={clearFilters}>
            Clear filters
          </button>
        </div>
      )}

      {items && items.length > 0 && (
        <>
          <div className="card table-card">
            <table className="list-table inbound-table" aria-busy={list.loading || undefined}>
              <thead>
                <tr>
                  <th scope="col">Received</th>
                  <th scope="col">From</th>
                  <th scope="col">Subject</th>
                  <th scope="col">Server</th>
                  <th scope="col">Delivery</th>
                </tr>
              </thead>
              <tbody>
                {items.map((m) => (
                  <tr key={m.id} className="clickable" onClick={(e) => openRow(e, m.id)}>
                    <td className="nowrap" title={formatDateTime(m.receivedAt)}>
                      {formatDateTimeShort(m.receivedAt)}
                    </td>
                    <td>
                      <span className="message-address message-from" title={m.from}>
                        {m.from || '—'}
                      </span>
                    </td>
                    <td className="message-subject">
                      <Link to={incomingMessagePath(m.id)}>{m.subject || '(no subject)'}</Link>
                      {m.problem && (
                        <>
                          {' '}
                          <MessageProblemBadge problem={m.problem} />
                        </>
                      )}
                      {m.inReplyToOutboxId && (
                        <Link
                          to={emailPath(m.inReplyToOutboxId)}
                          className="reply-marker"
                          title="A reply to an email sent through Mailroom: open the email"
                        >
                          Reply to
                        </Link>
                      )}
                      {m.attachments.length > 0 && (
                        <span className="muted attachment-count" title={m.attachments.map((a) => a.filename).join(', ')}>
                          {' '}
                          · {m.attachments.length} {m.attachments.length === 1 ? 'attachment' : 'attachments'}
                        </span>
                      )}
                    </td>
                    <td className="message-server">{m.serverName}</td>
                    <td>
                      <DeliveryStateBadge state={m.delivery.state} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {list.moreError && <ErrorAlert problem={list.moreError} />}
          <div className="list-footer">
            <span className="muted">
              {items.length} {items.length === 1 ? 'message' : 'messages'}
              {list.nextCursor ? ' shown' : ''}
            </span>
            {list.nextCursor && (
              <button
                type="button"
                className="btn btn-secondary"
                onClick={list.loadMore}
                disabled={list.loadingMore}
                aria-busy={list.loadingMore || undefined}
              >
                {list.loadingMore && <Spinner />}
                Load more
              </button>
            )}
          </div>
        </>
      )}
    </>
  );
}
