import { useEffect, useState } from 'react';
import { api, type ApiError, type IncomingServer } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
import { Link } from './router.tsx';
import { serverFormPath } from './routes.ts';
import { Spinner } from './spinner.tsx';

/**
 * Bounces and automatic replies come back to the mailbox that sent: an outgoing server without an
 * incoming server on the same mailbox offers to watch it (reusing its connection). Also the
 * server's choice for suppressed recipients.
 */
export function BounceWatchPanel({ serverId, username }: { serverId: string; username: string }) {
  const [watcher, setWatcher] = useState<IncomingServer | null | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [policy, setPolicy] = useState<'warn' | 'refuse' | ''>('');

  useEffect(() => {
    let cancelled = false;
    api.getReportSettings(serverId).then(
      (r) => !cancelled && setPolicy(r.suppressionPolicy),
      () => undefined,
    );
    api.listIncomingServers().then(
      (r) => !cancelled && setWatcher(r.items.find((s) => s.username.toLowerCase() === username.toLowerCase()) ?? null),
      () => !cancelled && setWatcher(null),
    );
    return () => {
      cancelled = true;
    };
  }, [serverId, username]);

  async function watch() {
    setBusy(true);
    setError(null);
    try {
      setWatcher(await api.watchMailbox(serverId));
    } catch (e) {
      setError(e as ApiError);
    } finally {
      setBusy(false);
    }
  }

  async function choose(p: 'warn' | 'refuse') {
    setError(null);
    try {
      await api.setReportSettings(serverId, { suppressionPolicy: p });
      setPolicy(p);
    } catch (e) {
      setError(e as ApiError);
    }
  }

  return (
    <section className="card bounce-watch" aria-labelledby="bounce-watch">
      <h2 id="bounce-watch">Bounces and replies</h2>
      {error && <ErrorAlert problem={error} />}
      {watcher === undefined && <p className="loading">Loading…</p>}
      {watcher === null && (
        <>
          <p className="muted">
            Bounces, delay reports and automatic replies come back to {username}. Mailroom reads them there and shows them on the email
            that caused them; nothing else in the mailbox is changed.
          </p>
          <button type="button" className="btn btn-secondary" onClick={() => void watch()} disabled={busy} aria-busy={busy || undefined}>
            {busy && <Spinner />}
            Watch this mailbox for bounces and replies
          </button>
        </>
      )}
      {watcher && (
        <p>
          Watched by the incoming server <Link to={serverFormPath('incoming', watcher.id)}>{watcher.name}</Link>.
        </p>
      )}
      <label>
        Sending to a suppressed address{' '}
        <select value={policy} onChange={(e) => void choose(e.target.value as 'warn' | 'refuse')}>
          <option value="" disabled>
            Choose…
          </option>
          <option value="warn">Send with a warning (default)</option>
          <option value="refuse">Refuse (422 naming the address and the bounce)</option>
        </select>
      </label>
    </section>
  );
}
