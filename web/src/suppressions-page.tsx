import { useState } from 'react';
import { api, type ApiError, type Suppression } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
import { formatDateTime, formatDateTimeShort } from './format-date-time.ts';
import { Link } from './router.tsx';
import { emailPath } from './routes.ts';
import { Spinner } from './spinner.tsx';
import { usePagedList } from './use-paged-list.ts';
import { useTitle } from './use-title.ts';

type Row = Suppression & { id: string };

/** Addresses further mail to is refused or warned about (per outgoing server), with the bounce that put them here. */
export function SuppressionsPage() {
  useTitle('Suppressions');
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

  async function lift(address: string) {
    setBusy(address);
    setError(null);
    try {
      await api.liftSuppression(address);
      setVersion((v) => v + 1);
    } catch (e) {
      setError(e as ApiError);
    } finally {
      setBusy(null);
    }
  }

  const { items } = list;
  return (
    <>
      <div className="page-header">
        <div>
          <p className="breadcrumb">Settings / Technical</p>
          <h1>Suppressions</h1>
        </div>
      </div>
      <p className="muted">
        An address is suppressed when it bounced hard (the mailbox or the domain does not exist), or failed 5 times within 13 weeks.
        Each outgoing mail server either sends to it with a warning (the default) or refuses the email. Lift a suppression once the
        recipient's mailbox works again.
      </p>
      {(list.error || error) && <ErrorAlert problem={(error ?? list.error)!} />}
      {!items && !list.error && <p className="loading">Loading…</p>}
      {items && items.length === 0 && (
        <div className="card empty-state">
          <p className="empty-title">No address is suppressed.</p>
          <p className="muted">Addresses that bounce appear here once Mailroom reads the bounce in the sending mailbox.</p>
        </div>
      )}
      {items && items.length > 0 && (
        <div className="card table-card">
          <table className="list-table suppression-table">
            <thead>
              <tr>
                <th scope="col">Address</th>
                <th scope="col">Why</th>
                <th scope="col">Server's answer</th>
                <th scope="col">Email</th>
                <th scope="col">Since</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((s) => (
                <tr key={s.address}>
                  <td className="mono">{s.address}</td>
                  <td>
                    {s.explanation?.cause ?? (s.reason === 'hard' ? 'Bounced' : `Bounced ${s.bounces} times in 13 weeks`)}
                    {s.explanation?.fix && <div className="muted">{s.explanation.fix}</div>}
                  </td>
                  <td>
                    <code className="mono">{[s.status, s.diagnostic].filter(Boolean).join(' — ') || '—'}</code>
                  </td>
                  <td>{s.outboxMessageId ? <Link to={emailPath(s.outboxMessageId)}>Open</Link> : <span className="muted">—</span>}</td>
                  <td className="nowrap" title={formatDateTime(s.createdAt)}>
                    {formatDateTimeShort(s.createdAt)}
                  </td>
                  <td>
                    <button type="button" className="btn btn-secondary" onClick={() => void lift(s.address)} disabled={busy !== null} aria-busy={busy === s.address || undefined}>
                      {busy === s.address && <Spinner />}
                      Lift
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {list.moreError && <ErrorAlert problem={list.moreError} />}
    </>
  );
}
