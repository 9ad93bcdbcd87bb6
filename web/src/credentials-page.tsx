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
          <StackField id={`${idPrefix}-email`} name="email" label="Email" type="email" autoComplete="username" autoFocus value={email} onChange={setEmail} error={emailError} />
          <StackField
            id={`${idPrefix}-password`}
            name="password"
            label="Password"
            type="password"
            autoComplete={props.passwordAutoComplete}
            value={password}
            onChange={setPassword}
            help={props.passwordHelp}
            error={passwordError}
          />
          <button type="submit" className="btn btn-primary btn-block" disabled={busy} aria-busy={busy || undefined}>
            {busy && <Spinner />}
            {props.submitLabel}
          </button>
        </form>
      </main>
    </div>
  );
}

/** A label above its input, with the help (said before anything is sent) and the error below. */
function StackField(p: { id: string; name: string; label: string; type: string; autoComplete: string; autoFocus?: boolean; value: string; onChange: (v: string) => void; help?: string; error?: string }) {
  return (
    <div className="stack-field">
      <label htmlFor={p.id}>{p.label}</label>
      <input
        id={p.id}
        name={p.name}
        type={p.type}
        autoComplete={p.autoComplete}
        autoFocus={p.autoFocus}
        required
        value={p.value}
        onChange={(e) => p.onChange(e.target.value)}
        aria-invalid={p.error ? true : undefined}
        aria-describedby={[p.help ? `${p.id}-help` : '', p.error ? `${p.id}-error` : ''].filter(Boolean).join(' ') || undefined}
      />
      {p.help && (
        <p id={`${p.id}-help`} className="field-help">
          {p.help}
        </p>
      )}
      {p.error && (
        <p id={`${p.id}-error`} className="field-error">
          {p.error}
        </p>
      )}
    </div>
  );
}
