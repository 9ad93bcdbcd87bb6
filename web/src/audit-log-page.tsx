import { useEffect, useState } from 'react';
import { api, type AuditEvent, type ServerHealth } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
import { formatDateTime, formatDateTimeShort } from './format-date-time.ts';
import { Link } from './router.tsx';
import { mailServerPath, serverFormPath } from './routes.ts';
import { Spinner } from './spinner.tsx';
import { usePagedList } from './use-paged-list.ts';
import { useTitle } from './use-title.ts';

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

function actorText(actor: string): string {
  return actor === 'system' ? 'System' : actor;
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

/** Audit Log: who changed or connected what, newest first. */
export function AuditLogPage() {
  useTitle('Audit Log');
  const list = usePagedList<AuditEvent>((cursor) => api.listAuditEvents(cursor, 50), 'all', () => false);
  const [servers, setServers] = useState<Map<string, ServerHealth>>(new Map());

  // Names of the servers that still exist, for the Target column.
  useEffect(() => {
    let cancelled = false;
    api.serverHealth().then(
      (r) => !cancelled && setServers(new Map(r.items.map((s) => [s.id, s]))),
      () => undefined,
    );
    return () => {
      cancelled = true;
    };
  }, []);

  const { items } = list;
  return (
    <>
      <div className="page-header">
        <div>
          <p className="breadcrumb">Settings / Technical</p>
          <h1>Audit Log</h1>
        </div>
      </div>
      {list.error && <ErrorAlert problem={list.error} />}
      {!items && !list.error && <p className="loading">Loading…</p>}
      {items && items.length === 0 && (
        <div className="card empty-state">
          <p className="empty-title">Nothing recorded yet.</p>
          <p className="muted">Changes to mail servers, connections, API keys and webhooks appear here.</p>
        </div>
      )}
      {items && items.length > 0 && (
        <div className="card table-card">
          <table className="list-table audit-table">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Who</th>
                <th scope="col">What</th>
                <th scope="col">Target</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {items.map((e) => (
                <tr key={e.id}>
                  <td className="nowrap">
                    <time dateTime={e.at} title={formatDateTime(e.at)}>
                      {formatDateTimeShort(e.at)}
                    </time>
                  </td>
                  <td className="audit-actor">{actorText(e.actor)}</td>
                  <td>
                    <span title={e.action}>{humanizeAction(e.action)}</span>
                  </td>
                  <td className="audit-target">
                    <Target event={e} servers={servers} />
                  </td>
                  <td className="audit-details">
                    <code className="mono">{compactJson(e.details)}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {list.moreError && <ErrorAlert problem={list.moreError} />}
      {items && items.length > 0 && (
        <div className="list-footer">
          <span className="muted">
            {items.length} {items.length === 1 ? 'event' : 'events'}
            {list.nextCursor ? ' shown' : ''}
          </span>
          {list.nextCursor && (
            <button
              type="button"
              className="btn btn-secondary"
              onClick={() => void list.loadMore()}
              disabled={list.loadingMore}
              aria-busy={list.loadingMore || undefined}
            >
              {list.loadingMore && <Spinner />}
              Load more
            </button>
          )}
        </div>
      )}
    </>
  );
}
