import { useEffect, useState, type MouseEvent } from 'react';
import { asApiError, api, ApiError, type IncomingServer } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
import { formatDateTime, formatDateTimeShort } from './format-date-time.ts';
import { Notice } from './notice.tsx';
import { Link, navigate, useFlashNotice } from './router.tsx';
import { incomingMailServerPath, paths } from './routes.ts';
import { TokenStatusBadge } from './token-status-badge.tsx';
import { useTitle } from './use-title.ts';

function LastFetch({ server: s }: { server: IncomingServer }) {
  if (s.fetch.running) return <span className="muted">Fetching…</span>;
  const failed = s.lastError !== null || s.fetch.error !== null;
  return (
    <>
      <span title={formatDateTime(s.lastFetchAt)}>{formatDateTimeShort(s.lastFetchAt)}</span>
      {failed && (
        <span className="fetch-failed" title={(s.fetch.error ?? s.lastError)?.message}>
          {' '}
          Error
        </span>
      )}
    </>
  );
}

/** Settings › Technical › Incoming Mail Servers: mailboxes read over IMAP. */
export function IncomingMailServerList() {
  useTitle('Incoming Mail Servers');
  const [notice] = useFlashNotice();
  const [items, setItems] = useState<IncomingServer[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);

  useEffect(() => {
    let cancelled = false;
    api.listIncomingServers().then(
      (r) => !cancelled && setItems(r.items),
      (e: unknown) => !cancelled && setError(asApiError(e)),
    );
    return () => {
      cancelled = true;
    };
  }, []);

  function openRow(e: MouseEvent<HTMLTableRowElement>, id: string) {
    // Let links, text selection and modified clicks behave normally.
    if ((e.target as HTMLElement).closest('a, button') || window.getSelection()?.toString()) return;
    navigate(incomingMailServerPath(id));
  }

  return (
    <>
      <div className="page-header">
        <div>
          <p className="breadcrumb">Settings / Technical</p>
          <h1>Incoming Mail Servers</h1>
        </div>
        <div className="page-actions">
          <button type="button" className="btn btn-primary" onClick={() => navigate(paths.incomingMailServerNew)}>
            Add
          </button>
        </div>
      </div>
      {notice && <Notice>{notice}</Notice>}
      {error && <ErrorAlert problem={error} />}
      {!items && !error && <p className="loading">Loading…</p>}
      {items && items.length === 0 && (
        <div className="card empty-state">
          <p className="empty-title">No incoming mail servers yet.</p>
          <p className="muted">
            Add a Microsoft 365 mailbox to read its messages over IMAP with Outlook OAuth Authentication and pass them
            on to your application through a <Link to={paths.webhooks}>webhook</Link>.
          </p>
        </div>
      )}
      {items && items.length > 0 && (
        <div className="card table-card">
          <table className="list-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Username</th>
                <th scope="col">Server</th>
                <th scope="col">Folder</th>
                <th scope="col" className="num">
                  Interval
                </th>
                <th scope="col">Status</th>
                <th scope="col">Last fetch</th>
              </tr>
            </thead>
            <tbody>
              {items.map((s) => (
                <tr key={s.id} className={s.active ? 'clickable' : 'clickable inactive'} onClick={(e) => openRow(e, s.id)}>
                  <td className="server-name">
                    <Link to={incomingMailServerPath(s.id)}>{s.name || '(no name)'}</Link>
                    {!s.active && <span className="badge badge-inactive">Inactive</span>}
                  </td>
                  <td>{s.username}</td>
                  <td>
                    {s.imapHost}:{s.imapPort}
                  </td>
                  <td>{s.folder}</td>
                  <td className="num nowrap">{s.intervalMinutes} min</td>
                  <td>
                    <TokenStatusBadge status={s.tokenStatus} />
                  </td>
                  <td className="nowrap">
                    <LastFetch server={s} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
