import { api, type Session } from './api.ts';
import { CredentialsPage } from './credentials-page.tsx';
import { navigate, useLocation } from './router.tsx';
import { paths } from './routes.ts';
import { useTitle } from './use-title.ts';

export function SetupPage({ onLoggedIn }: { onLoggedIn: (session: Session) => void }) {
  useTitle('Create the first administrator');
  const { query } = useLocation();
  const token = query.get('token') ?? '';
  return (
    <CredentialsPage
      idPrefix="setup"
      title="Create the first administrator"
      intro={
        <>
          <p className="muted">This account manages the mail servers of this Mailroom installation.</p>
          {!token && (
            <div className="alert alert-warning" role="alert">
              <p className="alert-message">This setup link has no token.</p>
              <p className="alert-fix">Open the complete setup link printed by the server when it started.</p>
            </div>
          )}
        </>
      }
      passwordAutoComplete="new-password"
      passwordHelp="At least 10 characters. A passphrase of a few words is easiest to remember."
      submitLabel="Create admin"
      send={(email, password) => api.setup(token, email, password)}
      onLoggedIn={onLoggedIn}
      then={() => navigate(paths.settings, { replace: true })}
    />
  );
}
