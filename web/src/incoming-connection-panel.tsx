import { useEffect, useRef, useState } from 'react';
import { api, ApiError, type AuthMethodChoice, type FetchStatus, type IncomingServer } from './api.ts';
import { AdminConsentNotice, BusyButton, ConnectActions, OutcomeAlert, RolesResult, ServerNoticeAlert, toFailure, useConnect, useTest, type Outcome } from './connection-common.tsx';
import { ConnectionStatus } from './connection-status.tsx';
import { DisconnectButton } from './disconnect-button.tsx';
import { ErrorAlert } from './error-alert.tsx';
import { formatDateTime } from './format-date-time.ts';
import { Notice } from './notice.tsx';
import { Link } from './router.tsx';
import { mailServerPath, paths } from './routes.ts';
import { pushStatusText } from './push-status-text.ts';
import { TimeText } from './time-text.tsx';

/** How often a running fetch is read again. */
const FETCH_POLL_MS = 1000;

interface IncomingConnectionPanelProps {
  server: IncomingServer;
  /** The server's Authenticate Using as the API describes it (undefined while the list loads). */
  method: AuthMethodChoice | undefined;
  /** The `oauth` query parameter set by the OAuth callback redirect: 'connected' | 'admin_consent' | 'error' | null. */
  oauth: string | null;
  /** The form below has unsaved changes. */
  dirty: boolean;
  onServerChange: (server: IncomingServer) => void;
}

function fetchOutcome(f: FetchStatus): Outcome {
  if (f.error) return { ok: false, message: f.error.message, fix: f.error.fix, evidence: f.error.evidence };
  return { ok: true, message: `Fetched ${f.imported} new ${f.imported === 1 ? 'message' : 'messages'}` };
}

function progressText(f: FetchStatus): string {
  if (f.total !== null) return `Fetched ${f.fetched} of ${f.total}…`;
  return f.fetched > 0 ? `Fetched ${f.fetched}…` : 'Fetching…';
}

/** Token status of an existing incoming mail server and the actions to connect, test and fetch now. */
export function IncomingConnectionPanel({ server, method, oauth, dirty, onServerChange }: IncomingConnectionPanelProps) {
  // Token status, connect and disconnect only for OAuth methods; Username/Password just tests and fetches.
  const provider = method?.oauth ?? null;
  const account = provider ? `${provider.accountName} account` : 'account';
  const guide = provider?.id ?? null;
  const [disconnected, setDisconnected] = useState(false);
  const [starting, setStarting] = useState(false);
  // Follow a fetch started here, or one already running when the page opened.
  const [watching, setWatching] = useState(() => server.fetch.running);
  const [fetchResult, setFetchResult] = useState<Outcome | null>(null);

  const onChange = useRef(onServerChange);
  onChange.current = onServerChange;

  function refresh() {
    api.getIncomingServer(server.id).then(onChange.current, () => undefined);
  }
  const { connecting, connectError, setConnectError, roles, connect } = useConnect('incoming-servers', server, refresh);
  const { testing, testOutcome, setTestOutcome, test } = useTest(() => api.testIncomingServer(server.id), (r) => ({ ok: true, message: r.message || 'Connection Test Successful!' }), refresh);

  useEffect(() => {
    if (!watching) return;
    let stopped = false;
    let timer = 0;
    const tick = async () => {
      try {
        const s = await api.getIncomingServer(server.id);
        if (stopped) return;
        onChange.current(s);
        if (!s.fetch.running) {
          setWatching(false);
          setFetchResult(fetchOutcome(s.fetch));
          return;
        }
      } catch (err) {
        if (stopped) return;
        if (!(err instanceof ApiError) || err.status === 404 || err.status === 401) {
          setWatching(false);
          setFetchResult(toFailure(err));
          return;
        }
        // A passing network or server error: the next tick tries again.
      }
      if (!stopped) timer = window.setTimeout(tick, FETCH_POLL_MS);
    };
    timer = window.setTimeout(tick, 0);
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, [watching, server.id]);

  async function fetchNow() {
    setStarting(true);
    setFetchResult(null);
    try {
      await api.fetchIncomingServer(server.id);
      setWatching(true);
    } catch (err) {
      // 409: a fetch is already running (scheduled or started elsewhere): follow that one.
      if (err instanceof ApiError && err.status === 409) setWatching(true);
      else setFetchResult(toFailure(err));
    } finally {
      setStarting(false);
    }
  }

  const shared = server.tokenSourceId !== null;
  const fetching = starting || watching;
  const showLastError = server.lastError && !testOutcome && !fetchResult && !fetching;
  const progress = server.fetch;

  return (
    <section className="card connection-panel" aria-labelledby="connection-heading">
      <h2 id="connection-heading">Connection</h2>

      {oauth === 'connected' && !disconnected && <Notice>{`${account.charAt(0).toUpperCase()}${account.slice(1)} connected`}</Notice>}
      {oauth === 'admin_consent' && !disconnected && <AdminConsentNotice method={method} access={server.access} />}
      {disconnected && <Notice kind="info">Disconnected. Mailroom no longer holds tokens for this mailbox.</Notice>}
      {showLastError && server.lastError && (
        <ErrorAlert
          problem={server.lastError}
          title={
            oauth === 'error'
              ? `The ${account} could not be connected.`
              : `Last error${server.lastError.at ? ` (${formatDateTime(server.lastError.at)})` : ''}`
          }
          showCode
          guide={guide ?? false}
        />
      )}
      {oauth === 'error' && !server.lastError && !disconnected && (
        <ErrorAlert
          problem={{
            message: `The ${account} could not be connected.`,
            fix: `Try again with “${provider?.connectLabel ?? 'Connect'}”.`,
          }}
        />
      )}
      {connectError && <ErrorAlert problem={connectError} guide={guide ?? false} />}
      <RolesResult roles={roles} />
      <ServerNoticeAlert notice={server.notice} guide={guide} base="incoming-servers" serverId={server.id} onChange={refresh} />

      <ConnectionStatus
        server={server}
        tokens={provider !== null}
        guide={guide}
        factsBefore={
          shared &&
          server.tokenSourceId && (
            <div>
              <dt>Shared connection</dt>
              <dd>
                Outgoing mail server{' '}
                <Link to={mailServerPath(server.tokenSourceId)}>{server.tokenSourceName ?? server.tokenSourceId}</Link>
              </dd>
            </div>
          )
        }
        factsAfter={
          <>
            {server.push && (
              <div>
                <dt>Push</dt>
                <dd className={server.push.state === 'active' ? undefined : 'muted'}>{pushStatusText(server.push)}</dd>
              </div>
            )}
            <div>
              <dt>Last fetch</dt>
              <dd>
                <TimeText iso={server.lastFetchAt} empty="Never" />
              </dd>
            </div>
            <div>
              <dt>Imported messages</dt>
              <dd>
                {server.importedCount > 0 ? (
                  <Link to={`${paths.incomingMessages}?${new URLSearchParams({ serverId: server.id }).toString()}`}>
                    {server.importedCount}
                  </Link>
                ) : (
                  server.importedCount
                )}
              </dd>
            </div>
          </>
        }
      >
        {shared && server.tokenStatus !== 'valid' && server.tokenSourceId && (
          <p className="hint">
            This server uses the connection of the outgoing mail server: connect or reconnect the {account} on{' '}
            <Link to={mailServerPath(server.tokenSourceId)}>{server.tokenSourceName ?? 'that mail server'}</Link>.
          </p>
        )}
      </ConnectionStatus>

      {dirty && <p className="hint">You have unsaved changes below: save them before connecting or testing.</p>}

      <div className="button-row">
        <ConnectActions base="incoming-servers" server={server} method={method} connecting={connecting} onConnect={connect} showConnect={!shared} />
        <BusyButton busy={testing} onClick={test}>
          Test &amp; Confirm
        </BusyButton>
        <BusyButton busy={fetching} onClick={fetchNow}>
          Fetch Now
        </BusyButton>
        {!shared && provider && server.tokenStatus !== 'not_connected' && (
          <DisconnectButton
            disconnect={() => api.disconnectIncomingServer(server.id)}
            onDisconnected={(s) => {
              setTestOutcome(null);
              setFetchResult(null);
              setConnectError(null);
              setDisconnected(true);
              onChange.current(s);
            }}
            onError={setConnectError}
            disabled={fetching}
          />
        )}
      </div>
      <div className="action-result" aria-live="polite">
        {testing && <p className="muted">Testing the connection…</p>}
        {testOutcome && <OutcomeAlert guide={guide} outcome={testOutcome} />}
      </div>
      <div className="action-result" aria-live="polite">
        {fetching && (
          <div className="fetch-progress" role="status">
            <span>{progress.running ? progressText(progress) : 'Fetching…'}</span>
            {progress.running && progress.total !== null && progress.total > 0 && (
              <progress aria-label="Fetch progress" max={progress.total} value={Math.min(progress.fetched, progress.total)} />
            )}
          </div>
        )}
        {!fetching && fetchResult && <OutcomeAlert guide={guide} outcome={fetchResult} failureTitle="The fetch failed." />}
      </div>
    </section>
  );
}
