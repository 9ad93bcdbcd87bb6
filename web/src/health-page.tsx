import { api, type ServerHealth } from './api.ts';
import { ListView, type Column } from './list-view.tsx';
import { Link } from './router.tsx';
import { paths, serverFormPath } from './routes.ts';
import { secretExpiryText, secretNeedsAttention } from './secret-expiry-text.ts';
import { checklistSummary } from './server-checklist.tsx';
import { pushStatusText } from './push-status-text.ts';
import { SendingSummary } from './sending-summary.tsx';
import { ConnectionCell } from './server-list-page.tsx';
import { useItems } from './use-items.ts';

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

function ChecklistCell({ server: s }: { server: ServerHealth }) {
  const open = s.checklist.filter((i) => i.state !== 'done');
  const failed = open.some((i) => i.state === 'failed');
  return (
    <span
      className={failed ? 'checklist-count checklist-count-failed' : 'checklist-count'}
      title={open.length > 0 ? `Open: ${open.map((i) => i.label).join(', ')}` : 'All done'}
    >
      {checklistSummary(s.checklist)}
    </span>
  );
}

/** The last error whole: it wraps in its cell; the code and the fix are in the tooltip. */
function LastErrorCell({ server: s }: { server: ServerHealth }) {
  if (!s.lastError) return <span className="muted">—</span>;
  const { message, code, fix } = s.lastError;
  return <span title={[code, fix].filter(Boolean).join(' — ') || undefined}>{message}</span>;
}

const columns: Column<ServerHealth>[] = [
  { key: 'direction', label: 'Direction', priority: 2, render: (s) => DIRECTION_LABELS[s.direction] ?? s.direction },
  {
    key: 'name',
    label: 'Name',
    className: 'health-name',
    render: (s) => <Link to={serverFormPath(s.direction, s.id)}>{s.name || '(no name)'}</Link>,
  },
  { key: 'mailbox', label: 'Mailbox', className: 'health-mailbox', render: (s) => s.username },
  { key: 'token', label: 'Connection', render: (s) => <ConnectionCell server={s} /> },
  { key: 'secret', label: 'Client secret', className: 'nowrap', priority: 2, render: (s) => <SecretCell server={s} /> },
  { key: 'checklist', label: 'Checklist', className: 'nowrap', render: (s) => <ChecklistCell server={s} /> },
  {
    key: 'sending',
    label: 'Sending / Push',
    priority: 2,
    render: (s) =>
      s.sending ? (
        <SendingSummary sending={s.sending} />
      ) : s.push ? (
        <span className={s.push.state === 'active' ? undefined : 'health-error'}>{pushStatusText(s.push)}</span>
      ) : (
        <span className="muted">—</span>
      ),
  },
  { key: 'error', label: 'Last error', className: 'health-error', render: (s) => <LastErrorCell server={s} /> },
];

/** Mail Health: every outgoing and incoming server at a glance, with links to their forms. */
export function HealthPage() {
  const source = useItems(api.serverHealth);
  return (
    <ListView
      title="Mail Health"
      columns={columns}
      source={source}
      tableClass="health-table"
      noun={['server', 'servers']}
      empty={
        <>
          <p className="empty-title">No mail servers yet.</p>
          <p className="muted">
            <Link to={paths.outlookGuide}>How to connect Outlook</Link> walks through the first one.
          </p>
        </>
      }
    />
  );
}
