import { useState, type FormEvent, type ReactNode } from 'react';
import { asApiError, ApiError, type Session } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
import { Spinner } from './spinner.tsx';

/** The sign-in card: email and password, errors next to their field, one submit button. */
export function CredentialsPage(props: {
  /** Prefix of the field ids: `${idPrefix}-email`, `${idPrefix}-password`. */
  idPrefix: string;
  title: string;
  /** Shown under the title (explanations, warnings). */
  intro?: ReactNode;
  passwordAutoComplete: 'current-password' | 'new-password';
  /** The password's rule, said before anything is sent (a new password). */
  passwordHelp?: string;
  submitLabel: string;
  /** Sends the credentials; the session it returns is handed to onLoggedIn, then `then` runs. */
  send: (email: string, password: string) => Promise<Session>;
  onLoggedIn: (session: Session) => void;
  then: () => void;
}) {
  const { idPrefix } = props;
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      props.onLoggedIn(await props.send(email.trim(), password));
      props.then();
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
        <h1>{props.title}</h1>
        {props.intro}
        {generalError && <ErrorAlert problem={error} />}
        <form onSubmit={submit} noValidate>
          <div className="stack-field">
            <label htmlFor={`${idPrefix}-email`}>Email</label>
            <input
              id={`${idPrefix}-email`}
              name="email"
              type="email"
              autoComplete="username"
              autoFocus
              required
              value={email}
              onChange={(e) => setEmail(e.target.value)}
              aria-invalid={emailError ? true : undefined}
              aria-describedby={emailError ? `${idPrefix}-email-error` : undefined}
            />
            {emailError && (
              <p id={`${idPrefix}-email-error`} className="field-error">
                {emailError}
              </p>
            )}
          </div>
          <div className="stack-field">
            <label htmlFor={`${idPrefix}-password`}>Password</label>
            <input
              id={`${idPrefix}-password`}
              name="password"
              type="password"
              autoComplete={props.passwordAutoComplete}
              required
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              aria-invalid={passwordError ? true : undefined}
              aria-describedby={[props.passwordHelp ? `${idPrefix}-password-help` : '', passwordError ? `${idPrefix}-password-error` : ''].filter(Boolean).join(' ') || undefined}
            />
            {props.passwordHelp && (
              <p id={`${idPrefix}-password-help`} className="field-help">
                {props.passwordHelp}
              </p>
            )}
            {passwordError && (
              <p id={`${idPrefix}-password-error`} className="field-error">
                {passwordError}
              </p>
            )}
          </div>
          <button type="submit" className="btn btn-primary btn-block" disabled={busy} aria-busy={busy || undefined}>
            {busy && <Spinner />}
            {props.submitLabel}
          </button>
        </form>
      </main>
    </div>
  );
}
