import { api } from './api.ts';
import { authTypeLabel } from './auth-type-label.ts';
import { Link } from './router.tsx';
import { mailServerPath, paths } from './routes.ts';
import { ServerListPage } from './server-list-page.tsx';
import { TokenStatusBadge } from './token-status-badge.tsx';
import { useItems } from './use-items.ts';

export function MailServerList() {
  const { items, error } = useItems(api.listMailServers);
  return (
    <ServerListPage
      title="Mail Servers"
      addPath={paths.mailServerNew}
      pathOf={mailServerPath}
      items={items}
      error={error}
      empty={
        <>
          <p className="empty-title">No mail servers yet.</p>
          <p className="muted">Add your company's Microsoft 365 mailbox to send email with Outlook OAuth Authentication.</p>
        </>
      }
      head={
        <>
          <th scope="col">Description</th>
          <th scope="col">Username</th>
          <th scope="col">Authenticate Using</th>
          <th scope="col">SMTP Server</th>
          <th scope="col" className="num">
            Priority
          </th>
          <th scope="col">Status</th>
        </>
      }
      cells={(s) => (
        <>
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
        </>
      )}
    />
  );
}
