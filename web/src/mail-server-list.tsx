import { api, type MailServer } from './api.ts';
import { authTypeLabel } from './auth-type-label.ts';
import type { Column } from './list-view.tsx';
import { Link } from './router.tsx';
import { mailServerPath, paths } from './routes.ts';
import { ConnectionCell, ownerColumn, ServerListPage } from './server-list-page.tsx';

const columns: Column<MailServer>[] = [
  { key: 'name', label: 'Description', render: (s) => <Link to={mailServerPath(s.id)}>{s.name || '(no description)'}</Link> },
  { key: 'username', label: 'Username', className: 'message-address-cell', render: (s) => s.username },
  ownerColumn<MailServer>(),
  { key: 'auth', label: 'Authenticate Using', priority: 2, render: (s) => authTypeLabel(s.authType) },
  { key: 'smtp', label: 'SMTP Server', priority: 2, render: (s) => `${s.smtpHost}:${s.smtpPort}` },
  { key: 'priority', label: 'Priority', className: 'num', priority: 2, render: (s) => s.priority },
  { key: 'status', label: 'Status', render: (s) => <ConnectionCell server={s} /> },
];

export function MailServerList() {
  return (
    <ServerListPage
      title="Mail Servers"
      path={paths.mailServers}
      direction="outgoing"
      addPath={paths.mailServerNew}
      pathOf={mailServerPath}
      load={api.listMailServersFiltered}
      columns={columns}
      empty={
        <>
          <p className="empty-title">No mail servers yet.</p>
          <p className="muted">Add your company's Microsoft 365 mailbox to send email with Outlook OAuth Authentication.</p>
        </>
      }
    />
  );
}
