import { useState } from 'react';
import { api, asApiError, type ApiError, type Suppression } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
import { ListView, type Column } from './list-view.tsx';
import { Link } from './router.tsx';
import { emailPath } from './routes.ts';
import { Spinner } from './spinner.tsx';
import { TimeText } from './time-text.tsx';
import { usePagedList } from './use-paged-list.ts';

type Row = Suppression & { id: string };

/** Addresses further mail to is refused or warned about (per outgoing server), with the bounce that put them here. */
export function SuppressionsPage() {
  const [version, setVersion] = useState(0);
  const list = usePagedList<Row>(
    async (cursor) => {
      const page = await api.listSuppressions(cursor, 50);
      return { ...page, items: page.items.map((s) => ({ ...s, id: s.address })) };
    },
    `v${version}`,
    () => false,
  );
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);

  async function lift(addresses: string[]) {
    setBusy(addresses.length === 1 ? (addresses[0] ?? null) : '*');
    setError(null);
    try {
      for (const a of addresses) await api.liftSuppression(a);
    } catch (e) {
      setError(asApiError(e));
    } finally {
      setBusy(null);
      setVersion((v) => v + 1);
    }
  }

  const columns: Column<Row>[] = [
    { key: 'address', label: 'Address', className: 'mono', render: (s) => s.address },
    {
      key: 'why',
      label: 'Why',
      render: (s) => (
        <>
          {s.explanation?.cause ?? (s.reason === 'hard' ? 'Bounced' : `Bounced ${s.bounces} times in 13 weeks`)}
          {s.explanation?.fix && <div className="muted">{s.explanation.fix}</div>}
        </>
      ),
    },
    {
      key: 'answer',
      label: "Server's answer",
      priority: 2,
      render: (s) => <code className="mono">{[s.status, s.diagnostic].filter(Boolean).join(' — ') || '—'}</code>,
    },
    {
      key: 'email',
      label: 'Email',
      render: (s) => (s.outboxMessageId ? <Link to={emailPath(s.outboxMessageId)}>Open</Link> : <span className="muted">—</span>),
    },
    { key: 'since', label: 'Since', className: 'nowrap', render: (s) => <TimeText iso={s.createdAt} format="short" /> },
    {
      key: 'actions',
      label: 'Actions',
      hiddenLabel: true,
      className: 'actions',
      render: (s) => (
        <button
          type="button"
          className="btn btn-secondary"
          onClick={() => void lift([s.address])}
          disabled={busy !== null}
          aria-busy={busy === s.address || undefined}
        >
          {busy === s.address && <Spinner />}
          Lift
        </button>
      ),
    },
  ];

  return (
    <ListView
      title="Suppressions"
      intro={
        <>
          <p className="muted page-intro">
            An address is suppressed when it bounced hard (the mailbox or the domain does not exist), or failed 5 times
            within 13 weeks. Each outgoing mail server either sends to it with a warning (the default) or refuses the
            email. Lift a suppression once the recipient's mailbox works again.
          </p>
          {error && <ErrorAlert problem={error} />}
        </>
      }
      columns={columns}
      source={list}
      bulkActions={[{ label: 'Lift selected', run: (rows) => lift(rows.map((r) => r.address)) }]}
      noun={['address', 'addresses']}
      tableClass="suppression-table"
      empty={
        <>
          <p className="empty-title">No address is suppressed.</p>
          <p className="muted">Addresses that bounce appear here once Mailroom reads the bounce in the sending mailbox.</p>
        </>
      }
    />
  );
}
