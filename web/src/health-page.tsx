import { api, type ServerHealth } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
import { Link } from './router.tsx';
import { paths, serverFormPath } from './routes.ts';
import { secretExpiryText, secretNeedsAttention } from './secret-expiry-text.ts';
import { checklistSummary } from './server-checklist.tsx';
import { pushStatusText } from './push-status-text.ts';
import { SendingSummary } from './sending-summary.tsx';
import { TokenStatusBadge } from './token-status-badge.tsx';
import { useItems } from './use-items.ts';
import { useTitle } from './use-title.ts';

const DIRECTION_LABELS: Record<ServerHealth['direction'], string> = {
  outgoing: 'Outgoing',
  incoming: 'Incoming',
};

function SecretCell({ server }: { server: ServerHealth }) {
  const e = server.clientSecretExpiry;
  const text = secretExpiryText(e);
  if (!text) return <span className="muted">{e ? 'No date' : '—'}</span>;
  return <span className={secretNeedsAttention(e) ? 'secret-expiry-warning' : undefined}>{text}</span>;
}

/** Mail Health: every outgoing and incoming server at a glance, with links to their forms. */
export function HealthPage() {
  useTitle('Mail Health');
  const { items, error } = useItems(api.serverHealth);

  return (
    <>
      <div className="page-header">
        <div>
          <p className="breadcrumb">Settings / Technical</p>
          <h1>Mail Health</h1>
        </div>
      </div>
      {error && <ErrorAlert problem={error} />}
      {!items && !error && <p className="loading">Loading…</p>}
      {items && items.length === 0 && (
        <div className="card empty-state">
          <p className="empty-title">No mail servers yet.</p>
          <p className="muted">
            <Link to={paths.outlookGuide}>How to connect Outlook</Link> walks through the first one.
          </p>
        </div>
      )}
      {items && items.length > 0 && (
        <div className="card table-card">
          <table className="list-table health-table">
            <thead>
              <tr>
                <th scope="col">Direction</th>
                <th scope="col">Name</th>
                <th scope="col">Mailbox</th>
                <th scope="col">Token</th>
                <th scope="col">Client secret</th>
                <th scope="col">Checklist</th>
                <th scope="col">Sending / Push</th>
                <th scope="col">Last error</th>
              </tr>
            </thead>
            <tbody>
              {items.map((s) => {
                const open = s.checklist.filter((i) => i.state !== 'done');
                const failed = open.some((i) => i.state === 'failed');
                return (
                  <tr key={s.id}>
                    <td>{DIRECTION_LABELS[s.direction] ?? s.direction}</td>
                    <td className="health-name">
                      <Link to={serverFormPath(s.direction, s.id)}>{s.name || '(no name)'}</Link>
                    </td>
                    <td>{s.username}</td>
                    <td>
                      <TokenStatusBadge status={s.tokenStatus} />
                    </td>
                    <td className="nowrap">
                      <SecretCell server={s} />
                    </td>
                    <td className="nowrap">
                      <span
                        className={failed ? 'checklist-count checklist-count-failed' : 'checklist-count'}
                        title={open.length > 0 ? `Open: ${open.map((i) => i.label).join(', ')}` : 'All done'}
                      >
                        {checklistSummary(s.checklist)}
                      </span>
                    </td>
                    <td>
                      {s.sending ? <SendingSummary sending={s.sending} /> : s.push ? <span className={s.push.state === 'active' ? undefined : 'health-error'}>{pushStatusText(s.push)}</span> : <span className="muted">—</span>}
                    </td>
                    <td className="health-error">{s.lastError?.message ?? <span className="muted">—</span>}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
