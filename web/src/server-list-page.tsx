import { useCallback, useEffect, useMemo, useState, type ReactNode } from 'react';
import { asApiError, type ApiError, type ServerListFilters } from './api.ts';
import { ListView, useListQuery, type Column } from './list-view.tsx';
import { Notice } from './notice.tsx';
import { navigate, useFlashNotice } from './router.tsx';
import { SERVER_STATE_OPTIONS, serverConnection, type ServerConnectionFacts } from './server-connection.ts';
import { StatusBadge } from './status-badge.tsx';

type ListedServer = ServerConnectionFacts & { id: string; name: string; username: string; owner?: string | null };

/** The Status column: where the connection stands, the reason in the tooltip. */
export function ConnectionCell({ server }: { server: ServerConnectionFacts }) {
  const c = serverConnection(server);
  return <StatusBadge kind="connection" state={c.badge} label={c.label} title={c.detail ?? undefined} />;
}

/** The Owner column: the ERP user a personal mailbox belongs to, or "Shared". */
export function ownerColumn<T extends { owner?: string | null }>(): Column<T> {
  return {
    key: 'owner',
    label: 'Owner',
    priority: 2,
    render: (s) => (s.owner ? <span className="mono">{s.owner}</span> : <span className="muted">Shared</span>),
  };
}

/** Applied here too: a server that does not filter yet answers every item. */
function matches(s: ListedServer, f: ServerListFilters): boolean {
  if (f.owner && (f.owner === 'shared' ? !!s.owner : s.owner !== f.owner)) return false;
  if (f.state && serverConnection(s).state !== f.state) return false;
  const q = f.q?.trim().toLowerCase();
  if (q && !`${s.name}\n${s.username}`.toLowerCase().includes(q)) return false;
  return true;
}

/**
 * Settings › Technical list page of mail servers: header with Add, the flash notice, filters by owner,
 * state and name (sent to the API, applied here as well), and rows that open the server's form.
 */
export function ServerListPage<T extends ListedServer>(props: {
  title: string;
  path: string;
  addPath: string;
  pathOf: (id: string) => string;
  load: (filters: ServerListFilters) => Promise<{ items: T[] }>;
  empty: ReactNode;
  columns: Column<T>[];
  rowClass?: (item: T) => string | undefined;
}) {
  const [notice] = useFlashNotice();
  const query = useListQuery(props.path, ['owner', 'state', 'q']);
  const filters = useMemo<ServerListFilters>(
    () => ({ owner: query.values.owner ?? '', state: query.values.state ?? '', q: query.values.q ?? '' }),
    [query.values.owner, query.values.state, query.values.q],
  );
  const [all, setAll] = useState<T[] | null>(null);
  const [owners, setOwners] = useState<string[]>([]);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);
  const load = useCallback(props.load, []);

  useEffect(() => {
    let cancelled = false;
    setLoading(true);
    load(filters).then(
      (r) => {
        if (cancelled) return;
        setAll(r.items);
        setError(null);
        setLoading(false);
        setOwners((o) => [...new Set([...o, ...r.items.map((s) => s.owner).filter((x): x is string => !!x)])].sort());
      },
      (e: unknown) => {
        if (cancelled) return;
        setError(asApiError(e));
        setLoading(false);
      },
    );
    return () => {
      cancelled = true;
    };
  }, [filters, load]);

  const items = all && all.filter((s) => matches(s, filters));
  return (
    <ListView
      title={props.title}
      actions={
        <button type="button" className="btn btn-primary" onClick={() => navigate(props.addPath)}>
          Add
        </button>
      }
      intro={notice && <Notice>{notice}</Notice>}
      columns={props.columns}
      source={{ items, error, loading }}
      rowHref={(s) => props.pathOf(s.id)}
      rowClass={props.rowClass}
      query={query}
      search={{ placeholder: 'Name or username' }}
      filters={[
        { name: 'state', label: 'State', options: SERVER_STATE_OPTIONS },
        {
          name: 'owner',
          label: 'Owner',
          options: [{ value: 'shared', label: 'Shared mailboxes' }, ...owners.map((o) => ({ value: o, label: o }))],
        },
      ]}
      noun={['server', 'servers']}
      empty={props.empty}
    />
  );
}
