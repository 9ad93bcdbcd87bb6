import { useMemo } from 'react';
import { api, type AuditEvent, type ServerHealth } from './api.ts';
import { ListView, type Column } from './list-view.tsx';
import { Link } from './router.tsx';
import { mailServerPath, serverFormPath } from './routes.ts';
import { TimeText } from './time-text.tsx';
import { useItems } from './use-items.ts';
import { usePagedList } from './use-paged-list.ts';

// Words that read better than their lower-case identifier.
const WORDS: Record<string, string> = {
  oauth: 'OAuth',
  apikey: 'API key',
  api: 'API',
  imap: 'IMAP',
  smtp: 'SMTP',
  auth: 'Sign-in',
};

// Whole actions whose generic reading would be odd.
const ACTIONS: Record<string, string> = {
  'auth.login': 'Logged in',
  'mail_server.tested': 'Mail server connection tested',
  'mail_server.test_email': 'Test email sent',
  'oauth.started': 'Outlook connection started',
  'oauth.connected': 'Outlook account connected',
  'oauth.failed': 'Outlook connection failed',
  'oauth.disconnected': 'Outlook account disconnected',
  'oauth.admin_consent': 'Admin consent granted',
  'alert.mailed': 'Alert e-mailed to the admins',
};

/** "mail_server.updated" → "Mail server updated". */
export function humanizeAction(action: string): string {
  const known = ACTIONS[action];
  if (known) return known;
  const words = action
    .split(/[._]+/)
    .filter(Boolean)
    .map((w) => WORDS[w.toLowerCase()] ?? w.toLowerCase());
  const text = words.join(' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function actorText(e: AuditEvent): string {
  return e.actorDisplay ?? (e.actor === 'system' ? 'System' : e.actor);
}

function compactJson(details: Record<string, unknown> | null): string {
  if (!details || Object.keys(details).length === 0) return '';
  try {
    return JSON.stringify(details);
  } catch {
    return String(details);
  }
}

function Target({ event, servers }: { event: AuditEvent; servers: Map<string, ServerHealth> }) {
  if (!event.targetId) return <span className="muted">—</span>;
  if (event.targetType === 'mail_server') {
    const known = servers.get(event.targetId);
    if (known) return <Link to={serverFormPath(known.direction, known.id)}>{known.name || known.username}</Link>;
    const path = event.action.startsWith('incoming_server.')
      ? serverFormPath('incoming', event.targetId)
      : mailServerPath(event.targetId);
    return (
      <Link to={path} className="mono">
        {event.targetId}
      </Link>
    );
  }
  return (
    <span>
      {event.targetType ? `${event.targetType.replace(/_/g, ' ')} ` : ''}
      <code className="mono">{event.targetId}</code>
    </span>
  );
}

const columns = (servers: Map<string, ServerHealth>): Column<AuditEvent>[] => [
  { key: 'when', label: 'When', className: 'nowrap', render: (e) => <TimeText iso={e.at} format="short" /> },
  { key: 'who', label: 'Who', className: 'audit-actor', render: (e) => <span title={e.actor}>{actorText(e)}</span> },
  { key: 'what', label: 'What', render: (e) => <span title={e.action}>{humanizeAction(e.action)}</span> },
  { key: 'target', label: 'Target', className: 'audit-target', render: (e) => <Target event={e} servers={servers} /> },
  {
    key: 'details',
    label: 'Details',
    priority: 2,
    className: 'audit-details',
    render: (e) => <code className="mono">{compactJson(e.details)}</code>,
  },
];

/** Audit Log: who changed or connected what, newest first. */
export function AuditLogPage() {
  const list = usePagedList<AuditEvent>((cursor) => api.listAuditEvents(cursor, 50), 'all', () => false);
  const health = useItems(api.serverHealth).items;
  // Names of the servers that still exist, for the Target column.
  const servers = useMemo(() => new Map((health ?? []).map((s) => [s.id, s])), [health]);
  return (
    <ListView
      title="Audit Log"
      columns={columns(servers)}
      source={list}
      noun={['event', 'events']}
      tableClass="audit-table"
      empty={
        <>
          <p className="empty-title">Nothing recorded yet.</p>
          <p className="muted">Changes to mail servers, connections, API keys and webhooks appear here.</p>
        </>
      }
    />
  );
}
