import { useCallback, useEffect, useMemo, useState, type ReactNode } from 'react';
import { api, asApiError, type ApiError, type BulkResult, type ServerDirection, type ServerListFilters, type ServerPage } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
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

/** A drop-down offers every owner up to this many; beyond, the filter suggests the owners matching what is typed. */
const OWNER_CHOICES = 200;
const SUGGESTIONS = 20;

const ownerChoice = (o: { owner: string; servers: number }) => ({ value: o.owner, label: `${o.owner} (${o.servers})` });

/** Owners of this direction's servers, from the API: all of them when they fit a drop-down, else null (suggested as typed). */
async function loadOwners(direction: ServerDirection): Promise<{ owner: string; servers: number }[] | null> {
  const page = await api.listOwners(direction, { limit: OWNER_CHOICES });
  return page.nextCursor ? null : page.items;
}

const BULK_LABEL = { test: 'Test Connection', disconnect: 'Disconnect' } as const;

/** Under a row after a bulk action: what it did to this server, in plain words. */
function BulkResultLine({ action, result }: { action: keyof typeof BULK_LABEL; result: BulkResult }) {
  return (
    <p className={`bulk-result ${result.ok ? 'bulk-result-ok' : 'bulk-result-failed'}`} data-testid="bulk-result">
      <strong>
        {BULK_LABEL[action]}: {result.ok ? (action === 'test' ? 'passed' : 'done') : 'failed'}.
      </strong>{' '}
      {result.message}
      {result.fix && <span className="muted"> {result.fix}</span>}
    </p>
  );
}
/**
 * Settings › Technical list page of mail servers: header with Add, the flash notice, filters by owner,
 * state and name (applied by the API, which answers the owners too), and rows that open the server's
 * form; ticked rows (or all matching) get Test Connection and Disconnect, with each row's result under it.
 */
export function ServerListPage<T extends ListedServer>(props: {
  title: string;
  path: string;
  addPath: string;
  direction: ServerDirection;
  pathOf: (id: string) => string;
  load: (filters: ServerListFilters, cursor?: string) => Promise<ServerPage<T>>;
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
  const [page, setPage] = useState<ServerPage<T> | null>(null);
  // null: more owners than a drop-down holds.
  const [owners, setOwners] = useState<{ owner: string; servers: number }[] | null>([]);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);
  const [version, setVersion] = useState(0);
  const [bulkDone, setBulkDone] = useState<{ action: keyof typeof BULK_LABEL; results: Map<string, BulkResult> } | null>(null);
  const [bulkError, setBulkError] = useState<ApiError | null>(null);
  const load = useCallback(props.load, []);
  const { direction } = props;

  useEffect(() => {
    let cancelled = false;
    setLoading(true);
    load(filters).then(
      (r) => {
        if (cancelled) return;
        setPage(r);
        setError(null);
        setLoading(false);
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
  }, [filters, load, version]);

  useEffect(() => {
    let cancelled = false;
    loadOwners(direction).then(
      (o) => !cancelled && setOwners(o),
      // The filter still works from the URL; the list itself reports any error.
      () => undefined,
    );
    return () => {
      cancelled = true;
    };
  }, [direction, version]);

  async function everyMatching(): Promise<T[]> {
    const all: T[] = [];
    let cursor: string | undefined;
    do {
      const p = await load(filters, cursor);
      all.push(...p.items);
      cursor = p.nextCursor ?? undefined;
    } while (cursor);
    return all;
  }

  async function runBulk(action: keyof typeof BULK_LABEL, servers: T[]) {
    setBulkError(null);
    try {
      const results = await api.bulkServers(direction, action, servers.map((s) => s.id));
      setBulkDone({ action, results: new Map(results.map((r) => [r.id, r])) });
    } catch (e) {
      setBulkError(asApiError(e));
    } finally {
      setVersion((v) => v + 1);
    }
  }

  const failed = bulkDone ? [...bulkDone.results.values()].filter((r) => !r.ok).length : 0;
  const mailboxes = (n: number) => `${n} mailbox${n === 1 ? '' : 'es'}`;
  return (
    <ListView
      title={props.title}
      actions={
        <button type="button" className="btn btn-primary" onClick={() => navigate(props.addPath)}>
          Add
        </button>
      }
      intro={
        <>
          {notice && <Notice>{notice}</Notice>}
          {bulkError && <ErrorAlert problem={bulkError} />}
          {bulkDone && (
            <Notice kind={failed ? 'warning' : 'success'}>
              {BULK_LABEL[bulkDone.action]}: {bulkDone.results.size - failed} of {mailboxes(bulkDone.results.size)}{' '}
              {bulkDone.action === 'test' ? 'passed' : 'disconnected'}
              {failed ? `, ${failed} failed (the reason is under each row)` : ''}.
            </Notice>
          )}
        </>
      }
      columns={props.columns}
      source={{ items: page?.items ?? null, error, loading }}
      rowHref={(s) => props.pathOf(s.id)}
      rowClass={props.rowClass}
      rowDetail={(s) => {
        const r = bulkDone?.results.get(s.id);
        return r && <BulkResultLine action={bulkDone!.action} result={r} />;
      }}
      query={query}
      search={{ placeholder: 'Name or username' }}
      filters={[
        { name: 'state', label: 'State', options: SERVER_STATE_OPTIONS },
        {
          name: 'owner',
          label: 'Owner',
          options: [{ value: 'shared', label: 'Shared mailboxes' }, ...(owners ?? []).map(ownerChoice)],
          ...(owners === null && { suggest: async (text: string) => (await api.listOwners(direction, { q: text, limit: SUGGESTIONS })).items.map(ownerChoice) }),
        },
      ]}
      noun={['server', 'servers']}
      empty={props.empty}
      bulkActions={[
        { label: BULK_LABEL.test, run: (rows) => runBulk('test', rows) },
        {
          label: BULK_LABEL.disconnect,
          danger: true,
          confirm: (n) => `Disconnect ${mailboxes(n)}? Mailroom forgets their tokens (and revokes the grant where the provider allows); their mail waits until each is connected again.`,
          run: (rows) => runBulk('disconnect', rows),
        },
      ]}
      allMatching={page ? { total: page.total, load: everyMatching } : undefined}
    />
  );
}
