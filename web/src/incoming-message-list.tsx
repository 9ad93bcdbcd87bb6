import { useCallback } from 'react';
import { api, type InboundMessage } from './api.ts';
import { ListView, useListQuery, type Column } from './list-view.tsx';
import { Link } from './router.tsx';
import { emailPath, incomingMessagePath, paths } from './routes.ts';
import { StatusBadge } from './status-badge.tsx';
import { TimeText } from './time-text.tsx';
import { useItems } from './use-items.ts';
import { usePagedList } from './use-paged-list.ts';

/** Webhook deliveries still on their way change by themselves: the list refreshes meanwhile. */
const anyPending = (items: InboundMessage[]) => items.some((m) => m.delivery.state === 'pending');

const columns: Column<InboundMessage>[] = [
  { key: 'received', label: 'Received', className: 'nowrap', render: (m) => <TimeText iso={m.receivedAt} format="short" /> },
  { key: 'from', label: 'From', render: (m) => <span className="message-address message-from">{m.from || '—'}</span> },
  {
    key: 'subject',
    label: 'Subject',
    className: 'message-subject',
    render: (m) => (
      <>
        <Link to={incomingMessagePath(m.id)}>{m.subject || '(no subject)'}</Link>
        {m.problem && (
          <>
            {' '}
            <StatusBadge kind="problem" state={m.problem.code} title={m.problem.message} />
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
      </>
    ),
  },
  { key: 'server', label: 'Server', priority: 2, className: 'message-server', render: (m) => m.serverName },
  { key: 'delivery', label: 'Delivery', render: (m) => <StatusBadge kind="delivery" state={m.delivery.state} /> },
];

/** Settings › Technical › Incoming Messages: what the incoming mail servers fetched, newest first. */
export function IncomingMessageList() {
  const query = useListQuery(paths.incomingMessages, ['serverId', 'q']);
  const serverId = query.values.serverId ?? '';
  const q = query.values.q ?? '';
  const servers = useItems(api.listIncomingServers).items;

  const fetchPage = useCallback((cursor: string | null) => api.listInboundMessages({ serverId, q }, cursor), [serverId, q]);
  const list = usePagedList(fetchPage, JSON.stringify([serverId, q.trim()]), anyPending);
  const pending = list.items ? anyPending(list.items) : false;

  return (
    <ListView
      title="Incoming Messages"
      columns={columns}
      source={list}
      rowHref={(m) => incomingMessagePath(m.id)}
      query={query}
      filterLabel="Filter incoming messages"
      search={{ placeholder: 'Subject or address' }}
      filters={[
        {
          name: 'serverId',
          label: 'Incoming Mail Server',
          wide: true,
          unknownLabel: 'Unknown incoming mail server',
          options: (servers ?? []).map((s) => ({ value: s.id, label: s.name || s.username })),
        },
      ]}
      status={pending && <span className="muted">Refreshing every 5 seconds while webhook deliveries are pending.</span>}
      noun={['message', 'messages']}
      tableClass="inbound-table"
      empty={
        <>
          <p className="empty-title">No incoming messages yet.</p>
          <p className="muted">
            Messages appear here once an <Link to={paths.incomingMailServers}>incoming mail server</Link> has fetched
            them (use Fetch Now to read the mailbox right away). Each one is posted to your{' '}
            <Link to={paths.webhooks}>webhooks</Link>.
          </p>
        </>
      }
    />
  );
}
