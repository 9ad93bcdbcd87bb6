import { api, type Session } from './api.ts';
import { CredentialsPage } from './credentials-page.tsx';
import { navigate, useLocation } from './router.tsx';
import { safeNext } from './routes.ts';
import { useTitle } from './use-title.ts';

export function LoginPage({ onLoggedIn }: { onLoggedIn: (session: Session) => void }) {
  useTitle('Sign in');
  const { query } = useLocation();
  return (
    <CredentialsPage
      idPrefix="login"
      title="Sign in to Mailroom"
      passwordAutoComplete="current-password"
      submitLabel="Sign in"
      send={(email, password) => api.login(email, password)}
      onLoggedIn={onLoggedIn}
      then={() => navigate(safeNext(query.get('next')), { replace: true })}
    />
  );
}
