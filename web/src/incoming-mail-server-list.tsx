import { api, type IncomingServer } from './api.ts';
import type { Column } from './list-view.tsx';
import { Link } from './router.tsx';
import { incomingMailServerPath, paths } from './routes.ts';
import { ConnectionCell, ownerColumn, ServerListPage } from './server-list-page.tsx';
import { StatusBadge } from './status-badge.tsx';
import { TimeText } from './time-text.tsx';

function LastFetch({ server: s }: { server: IncomingServer }) {
  if (s.fetch.running) return <span className="muted">Fetching…</span>;
  const failed = s.lastError !== null || s.fetch.error !== null;
  return (
    <>
      <TimeText iso={s.lastFetchAt} format="short" />
      {failed && (
        <span className="fetch-failed" title={(s.fetch.error ?? s.lastError)?.message}>
          {' '}
          Error
        </span>
      )}
    </>
  );
}

const columns: Column<IncomingServer>[] = [
  {
    key: 'name',
    label: 'Name',
    className: 'server-name',
    render: (s) => (
      <>
        <Link to={incomingMailServerPath(s.id)}>{s.name || '(no name)'}</Link>
        {!s.active && <StatusBadge kind="active" state="inactive" />}
      </>
    ),
  },
  { key: 'username', label: 'Username', render: (s) => s.username },
  ownerColumn<IncomingServer>(),
  { key: 'server', label: 'Server', priority: 2, render: (s) => `${s.imapHost}:${s.imapPort}` },
  { key: 'folder', label: 'Folder', priority: 2, render: (s) => s.folder },
  { key: 'interval', label: 'Interval', className: 'num nowrap', priority: 2, render: (s) => `${s.intervalMinutes} min` },
  { key: 'status', label: 'Status', render: (s) => <ConnectionCell server={s} /> },
  { key: 'fetch', label: 'Last fetch', className: 'nowrap', render: (s) => <LastFetch server={s} /> },
];

/** Settings › Technical › Incoming Mail Servers: mailboxes read over IMAP. */
export function IncomingMailServerList() {
  return (
    <ServerListPage
      title="Incoming Mail Servers"
      path={paths.incomingMailServers}
      direction="incoming"
      addPath={paths.incomingMailServerNew}
      pathOf={incomingMailServerPath}
      load={api.listIncomingServersFiltered}
      columns={columns}
      rowClass={(s) => (s.active ? undefined : 'inactive')}
      empty={
        <>
          <p className="empty-title">No incoming mail servers yet.</p>
          <p className="muted">
            Add a Microsoft 365 mailbox to read its messages over IMAP with Outlook OAuth Authentication and pass them
            on to your application through a <Link to={paths.webhooks}>webhook</Link>.
          </p>
        </>
      }
    />
  );
}
