import { useState, type FormEvent } from 'react';
import { asApiError, api, ApiError, type Session } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
import { navigate, useLocation } from './router.tsx';
import { safeNext } from './routes.ts';
import { Spinner } from './spinner.tsx';
import { useTitle } from './use-title.ts';

export function LoginPage({ onLoggedIn }: { onLoggedIn: (session: Session) => void }) {
  useTitle('Log in');
  const { query } = useLocation();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const session = await api.login(email.trim(), password);
      onLoggedIn(session);
      navigate(safeNext(query.get('next')), { replace: true });
    } catch (err) {
      setError(asApiError(err));
      setBusy(false);
    }
  }

  const emailError = error?.fields.email;
  const passwordError = error?.fields.password;
  const generalError = error && !emailError && !passwordError;

  return (
    <div className="auth-page">
      <main className="auth-card">
        <p className="auth-brand">Mailroom</p>
        <h1>Sign in to Mailroom</h1>
        {generalError && <ErrorAlert problem={error} />}
        <form onSubmit={submit} noValidate>
          <div className="stack-field">
            <label htmlFor="login-email">Email</label>
            <input
              id="login-email"
              name="email"
              type="email"
              autoComplete="username"
              autoFocus
              required
              value={email}
              onChange={(e) => setEmail(e.target.value)}
              aria-invalid={emailError ? true : undefined}
              aria-describedby={emailError ? 'login-email-error' : undefined}
            />
            {emailError && (
              <p id="login-email-error" className="field-error">
                {emailError}
              </p>
            )}
          </div>
          <div className="stack-field">
            <label htmlFor="login-password">Password</label>
            <input
              id="login-password"
              name="password"
              type="password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              aria-invalid={passwordError ? true : undefined}
              aria-describedby={passwordError ? 'login-password-error' : undefined}
            />
            {passwordError && (
              <p id="login-password-error" className="field-error">
                {passwordError}
              </p>
            )}
          </div>
          <button type="submit" className="btn btn-primary btn-block" disabled={busy} aria-busy={busy || undefined}>
            {busy && <Spinner />}
            Log in
          </button>
        </form>
      </main>
    </div>
  );
}
