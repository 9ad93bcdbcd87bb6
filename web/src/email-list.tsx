import { useCallback, useMemo } from 'react';
import { api, type Message, type MessageState } from './api.ts';
import { ListView, useListQuery, type Column } from './list-view.tsx';
import { Link } from './router.tsx';
import { emailPath, paths } from './routes.ts';
import { SendMessageExample } from './send-message-example.tsx';
import { receivedViaText } from './received-via-text.ts';
import { serverReply } from './server-reply.ts';
import { messageIsPending, StatusBadge, statusOptions } from './status-badge.tsx';
import { TimeText } from './time-text.tsx';
import { useItems } from './use-items.ts';
import { usePagedList } from './use-paged-list.ts';

/** Queued and sending messages change by themselves: the list refreshes meanwhile. */
const anyPending = (items: Message[]) => items.some((m) => messageIsPending(m.state));

/** Failed, held and queued-for-retry messages show their last error under the row. */
function showsError(m: Message): boolean {
  return m.lastError !== null && (m.state === 'failed' || m.state === 'held' || m.state === 'queued');
}

const MESSAGE_STATES = statusOptions('message');

/**
 * The attempts as what they mean: a count against the limit only while Mailroom is still trying;
 * for a sent or failed email, what happened.
 */
export function attemptsText(m: Pick<Message, 'state' | 'attempts' | 'maxAttempts'>): string {
  const n = m.attempts;
  const tries = `${n} ${n === 1 ? 'attempt' : 'attempts'}`;
  switch (m.state) {
    case 'queued':
    case 'sending':
      return n === 0 ? 'First attempt' : `Retrying: ${n} of ${m.maxAttempts}`;
    case 'sent':
      return n <= 1 ? 'First attempt' : `After ${tries}`;
    case 'failed':
      return n >= m.maxAttempts ? `Gave up after ${tries}` : `Stopped after ${tries}`;
    default:
      return n === 0 ? 'Not tried' : tries;
  }
}

function Recipients({ to }: { to: string[] }) {
  const [first, ...rest] = to;
  if (first === undefined) return <span className="muted">—</span>;
  return (
    <span className="recipients" title={to.join(', ')}>
      <span className="message-address">{first}</span>
      {rest.length > 0 && <span className="muted"> +{rest.length}</span>}
    </span>
  );
}

function ErrorLine({ message: m }: { message: Message }) {
  const error = m.lastError;
  if (!error) return null;
  const reply = serverReply(error);
  return (
    <div className="message-error-line">
      <span className="message-error">
        <span className="visually-hidden">Error: </span>
        {error.message}
      </span>
      {reply && (
        <details className="server-reply">
          <summary title={reply}>
            <span className="visually-hidden">Server reply: </span>
            <code>{reply}</code>
          </summary>
        </details>
      )}
    </div>
  );
}

const columns: Column<Message>[] = [
  {
    key: 'state',
    label: 'State',
    render: (m) => (
      <>
        <StatusBadge kind="message" state={m.state} /> {m.outcome && <StatusBadge kind="outcome" state={m.outcome} />}
      </>
    ),
  },
  {
    key: 'subject',
    label: 'Subject',
    className: 'message-subject',
    render: (m) => (
      <>
        <Link to={emailPath(m.id)}>{m.subject || '(no subject)'}</Link>
        {m.receivedVia && <div className="muted received-via">{receivedViaText(m)}</div>}
      </>
    ),
  },
  { key: 'to', label: 'To', render: (m) => <Recipients to={m.to} /> },
  { key: 'from', label: 'From', render: (m) => <span className="message-address">{m.from}</span> },
  {
    key: 'server',
    label: 'Mail Server',
    priority: 2,
    className: 'message-server',
    render: (m) => m.mailServerName ?? <span className="muted">—</span>,
  },
  { key: 'attempts', label: 'Attempts', priority: 2, className: 'nowrap', render: attemptsText },
  { key: 'created', label: 'Created', className: 'nowrap', render: (m) => <TimeText iso={m.createdAt} format="short" /> },
];

/** Settings › Technical › Emails: the outbox, newest first. */
export function EmailList() {
  const query = useListQuery(paths.emails, ['state', 'mailServerId', 'q']);
  const { state, mailServerId, q } = query.values as Record<'state' | 'mailServerId' | 'q', string>;
  const filters = useMemo(
    () => ({ state: MESSAGE_STATES.some((s) => s.value === state) ? (state as MessageState) : ('' as const), mailServerId, q }),
    [state, mailServerId, q],
  );
  const servers = useItems(api.listMailServers).items;

  const fetchPage = useCallback((cursor: string | null) => api.listMessages(filters, cursor), [filters]);
  const list = usePagedList(fetchPage, JSON.stringify(filters), anyPending);
  const pending = list.items ? anyPending(list.items) : false;

  return (
    <ListView
      title="Emails"
      columns={columns}
      source={list}
      rowHref={(m) => emailPath(m.id)}
      rowDetail={(m) => (showsError(m) ? <ErrorLine message={m} /> : null)}
      query={query}
      filterLabel="Filter emails"
      search={{ placeholder: 'Subject or address' }}
      filters={[
        { name: 'state', label: 'State', options: MESSAGE_STATES },
        {
          name: 'mailServerId',
          label: 'Mail Server',
          unknownLabel: 'Unknown mail server',
          options: (servers ?? []).map((s) => ({ value: s.id, label: s.name || s.username })),
        },
      ]}
      status={pending && <span className="muted">Refreshing every 5 seconds while emails are queued or sending.</span>}
      noun={['email', 'emails']}
      tableClass="message-table"
      groupClass="message-group"
      empty={
        <>
          <p className="empty-title">No emails yet.</p>
          <p className="muted">
            Applications queue messages through the API with an <Link to={paths.apiKeys}>API key</Link>; they appear
            here with their state and, when delivery fails, the mail server’s reply. For example:
          </p>
          <SendMessageExample from={servers?.[0]?.username} />
        </>
      }
    />
  );
}
