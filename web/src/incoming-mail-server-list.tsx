import { api, type IncomingServer } from './api.ts';
import { formatDateTime, formatDateTimeShort } from './format-date-time.ts';
import { Link } from './router.tsx';
import { incomingMailServerPath, paths } from './routes.ts';
import { ServerListPage } from './server-list-page.tsx';
import { TokenStatusBadge } from './token-status-badge.tsx';
import { useItems } from './use-items.ts';

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
  const { items, error } = useItems(api.listIncomingServers);
  return (
    <ServerListPage
      title="Incoming Mail Servers"
      addPath={paths.incomingMailServerNew}
      pathOf={incomingMailServerPath}
      items={items}
      error={error}
      empty={
        <>
          <p className="empty-title">No incoming mail servers yet.</p>
          <p className="muted">
            Add a Microsoft 365 mailbox to read its messages over IMAP with Outlook OAuth Authentication and pass them
            on to your application through a <Link to={paths.webhooks}>webhook</Link>.
          </p>
        </>
      }
      head={
        <>
          <th scope="col">Name</th>
          <th scope="col">Username</th>
          <th scope="col">Server</th>
          <th scope="col">Folder</th>
          <th scope="col" className="num">
            Interval
          </th>
          <th scope="col">Status</th>
          <th scope="col">Last fetch</th>
        </>
      }
      rowClass={(s) => (s.active ? 'clickable' : 'clickable inactive')}
      cells={(s) => (
        <>
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
        </>
      )}
    />
  );
}
