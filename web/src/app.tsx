import { useEffect, useState, type ReactNode } from 'react';
import { api, ApiError, onUnauthorized, type Session } from './api.ts';
import { ApiKeyList } from './api-key-list.tsx';
import { AuditLogPage } from './audit-log-page.tsx';
import { SuppressionsPage } from './suppressions-page.tsx';
import { EmailDetail } from './email-detail.tsx';
import { EmailList } from './email-list.tsx';
import { ErrorAlert } from './error-alert.tsx';
import { HealthPage } from './health-page.tsx';
import { IncomingMailServerForm } from './incoming-mail-server-form.tsx';
import { IncomingMailServerList } from './incoming-mail-server-list.tsx';
import { IncomingMessageDetail } from './incoming-message-detail.tsx';
import { IncomingMessageList } from './incoming-message-list.tsx';
import { Layout } from './layout.tsx';
import { LoginPage } from './login-page.tsx';
import { MailServerForm } from './mail-server-form.tsx';
import { MailServerList } from './mail-server-list.tsx';
import { NotFoundPage } from './not-found-page.tsx';
import { GmailGuidePage } from './gmail-guide-page.tsx';
import { OutlookGuidePage } from './outlook-guide-page.tsx';
import { navigate, useLocation } from './router.tsx';
import { matchRoute, paths } from './routes.ts';
import { SettingsPage } from './settings-page.tsx';
import { SetupPage } from './setup-page.tsx';
import { WebhookDetail } from './webhook-detail.tsx';
import { WebhookList } from './webhook-list.tsx';

function loginUrl(next: string): string {
  return `${paths.login}?${new URLSearchParams({ next }).toString()}`;
}

/** undefined: still asking the server; null: not logged in. */
type SessionState = Session | null | undefined;

export function App() {
  const location = useLocation();
  const [session, setSession] = useState<SessionState>(undefined);
  const [sessionError, setSessionError] = useState<ApiError | null>(null);
  const [loggingOut, setLoggingOut] = useState(false);

  useEffect(() => {
    let cancelled = false;
    api.getSession().then(
      (s) => !cancelled && setSession(s),
      (e: unknown) => {
        if (cancelled) return;
        if (e instanceof ApiError && e.status !== 401) setSessionError(e);
        setSession(null);
      },
    );
    return () => {
      cancelled = true;
    };
  }, []);

  // Any API call answered with 401: the session is gone, log in again and come back here.
  useEffect(
    () =>
      onUnauthorized(() => {
        const { pathname, search } = window.location;
        if (pathname === paths.login || pathname === paths.setup) return;
        navigate(loginUrl(pathname + search), { replace: true });
        setSession(null);
      }),
    [],
  );

  const match = matchRoute(location.pathname);
  const isPublic = match?.name === 'login' || match?.name === 'setup';
  const needsLogin = !isPublic && session === null && !sessionError;

  useEffect(() => {
    if (location.pathname === '/') navigate(paths.settings, { replace: true });
    else if (needsLogin) navigate(loginUrl(location.path), { replace: true });
  }, [location.pathname, location.path, needsLogin]);

  async function logout() {
    setLoggingOut(true);
    try {
      await api.logout();
    } catch {
      // The session is dropped locally either way.
    }
    navigate(paths.login);
    setSession(null);
    setLoggingOut(false);
  }

  if (match?.name === 'login') return <LoginPage onLoggedIn={setSession} />;
  if (match?.name === 'setup') return <SetupPage onLoggedIn={setSession} />;

  if (sessionError && !session) {
    return (
      <div className="auth-page">
        <main className="auth-card">
          <p className="auth-brand">Mailroom</p>
          <h1>Mailroom is not available</h1>
          <ErrorAlert problem={sessionError} />
          <button type="button" className="btn btn-secondary" onClick={() => window.location.reload()}>
            Try again
          </button>
        </main>
      </div>
    );
  }
  if (!session) {
    return (
      <p className="loading loading-page" role="status">
        Loading…
      </p>
    );
  }

  let page: ReactNode;
  switch (match?.name) {
    case 'settings':
      page = <SettingsPage />;
      break;
    case 'mailServers':
      page = <MailServerList />;
      break;
    case 'mailServerNew':
      page = <MailServerForm />;
      break;
    case 'mailServer':
      page = <MailServerForm id={match.params.id ?? ''} />;
      break;
    case 'emails':
      page = <EmailList />;
      break;
    case 'email':
      page = <EmailDetail id={match.params.id ?? ''} />;
      break;
    case 'apiKeys':
      page = <ApiKeyList />;
      break;
    case 'incomingMailServers':
      page = <IncomingMailServerList />;
      break;
    case 'incomingMailServerNew':
      page = <IncomingMailServerForm />;
      break;
    case 'incomingMailServer':
      page = <IncomingMailServerForm id={match.params.id ?? ''} />;
      break;
    case 'incomingMessages':
      page = <IncomingMessageList />;
      break;
    case 'incomingMessage':
      page = <IncomingMessageDetail id={match.params.id ?? ''} />;
      break;
    case 'webhooks':
      page = <WebhookList />;
      break;
    case 'webhook':
      page = <WebhookDetail id={match.params.id ?? ''} />;
      break;
    case 'outlookGuide':
      page = <OutlookGuidePage />;
      break;
    case 'gmailGuide':
      page = <GmailGuidePage />;
      break;
    case 'health':
      page = <HealthPage />;
      break;
    case 'auditLog':
      page = <AuditLogPage />;
      break;
    case 'suppressions':
      page = <SuppressionsPage />;
      break;
    default:
      page = <NotFoundPage />;
  }

  return (
    <Layout admin={session.admin} onLogout={logout} loggingOut={loggingOut}>
      <div key={location.pathname}>{page}</div>
    </Layout>
  );
}
