import { useState, type FormEvent } from 'react';
import { asApiError, api, ApiError, type Session } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
import { navigate, useLocation } from './router.tsx';
import { paths } from './routes.ts';
import { Spinner } from './spinner.tsx';
import { useTitle } from './use-title.ts';

export function SetupPage({ onLoggedIn }: { onLoggedIn: (session: Session) => void }) {
  useTitle('Create the first administrator');
  const { query } = useLocation();
  const token = query.get('token') ?? '';
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const session = await api.setup(token, email.trim(), password);
      onLoggedIn(session);
      navigate(paths.settings, { replace: true });
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
        <h1>Create the first administrator</h1>
        <p className="muted">This account manages the mail servers of this Mailroom installation.</p>
        {!token && (
          <div className="alert alert-warning" role="alert">
            <p className="alert-message">This setup link has no token.</p>
            <p className="alert-fix">Open the complete setup link printed by the server when it started.</p>
          </div>
        )}
        {generalError && <ErrorAlert problem={error} />}
        <form onSubmit={submit} noValidate>
          <div className="stack-field">
            <label htmlFor="setup-email">Email</label>
            <input
              id="setup-email"
              name="email"
              type="email"
              autoComplete="username"
              autoFocus
              required
              value={email}
              onChange={(e) => setEmail(e.target.value)}
              aria-invalid={emailError ? true : undefined}
              aria-describedby={emailError ? 'setup-email-error' : undefined}
            />
            {emailError && (
              <p id="setup-email-error" className="field-error">
                {emailError}
              </p>
            )}
          </div>
          <div className="stack-field">
            <label htmlFor="setup-password">Password</label>
            <input
              id="setup-password"
              name="password"
              type="password"
              autoComplete="new-password"
              required
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              aria-invalid={passwordError ? true : undefined}
              aria-describedby={passwordError ? 'setup-password-error' : undefined}
            />
            {passwordError && (
              <p id="setup-password-error" className="field-error">
                {passwordError}
              </p>
            )}
          </div>
          <button type="submit" className="btn btn-primary btn-block" disabled={busy} aria-busy={busy || undefined}>
            {busy && <Spinner />}
            Create admin
          </button>
        </form>
      </main>
    </div>
  );
}
