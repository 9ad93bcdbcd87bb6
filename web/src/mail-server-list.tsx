import { useEffect, useState, type MouseEvent } from 'react';
import { asApiError, api, ApiError, type MailServer } from './api.ts';
import { authTypeLabel } from './auth-type-label.ts';
import { ErrorAlert } from './error-alert.tsx';
import { Notice } from './notice.tsx';
import { Link, navigate, useFlashNotice } from './router.tsx';
import { mailServerPath, paths } from './routes.ts';
import { TokenStatusBadge } from './token-status-badge.tsx';
import { useTitle } from './use-title.ts';

export function MailServerList() {
  useTitle('Mail Servers');
  const [notice] = useFlashNotice();
  const [items, setItems] = useState<MailServer[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);

  useEffect(() => {
    let cancelled = false;
    api.listMailServers().then(
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
    navigate(mailServerPath(id));
  }

  return (
    <>
      <div className="page-header">
        <div>
          <p className="breadcrumb">Settings / Technical</p>
          <h1>Mail Servers</h1>
        </div>
        <div className="page-actions">
          <button type="button" className="btn btn-primary" onClick={() => navigate(paths.mailServerNew)}>
            Add
          </button>
        </div>
      </div>
      {notice && <Notice>{notice}</Notice>}
      {error && <ErrorAlert problem={error} />}
      {!items && !error && <p className="loading">Loading…</p>}
      {items && items.length === 0 && (
        <div className="card empty-state">
          <p className="empty-title">No mail servers yet.</p>
          <p className="muted">
            Add your company's Microsoft 365 mailbox to send email with Outlook OAuth Authentication.
          </p>
        </div>
      )}
      {items && items.length > 0 && (
        <div className="card table-card">
          <table className="list-table">
            <thead>
              <tr>
                <th scope="col">Description</th>
                <th scope="col">Username</th>
                <th scope="col">Authenticate Using</th>
                <th scope="col">SMTP Server</th>
                <th scope="col" className="num">
                  Priority
                </th>
                <th scope="col">Status</th>
              </tr>
            </thead>
            <tbody>
              {items.map((s) => (
                <tr key={s.id} className="clickable" onClick={(e) => openRow(e, s.id)}>
                  <td>
                    <Link to={mailServerPath(s.id)}>{s.name || '(no description)'}</Link>
                  </td>
                  <td>{s.username}</td>
                  <td>{authTypeLabel(s.authType)}</td>
                  <td>
                    {s.smtpHost}:{s.smtpPort}
                  </td>
                  <td className="num">{s.priority}</td>
                  <td>
                    <TokenStatusBadge status={s.tokenStatus} />
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
