import { fieldA11y } from './field-a11y.ts';
import { FormField } from './form-field.tsx';

const SET_PLACEHOLDER = '•••••••• (set — leave empty to keep)';

interface PasswordFieldProps {
  /** Element id, e.g. "mail-server-password"; the field name is "password". */
  id: string;
  value: string;
  onChange: (value: string) => void;
  error: string | undefined;
  /** A password is stored: the empty field keeps it. */
  passwordSet: boolean;
}

/** Username/Password's Password: write-only, never filled from the server, "set" when one is stored. */
export function PasswordField({ id, value, onChange, error, passwordSet }: PasswordFieldProps) {
  const help = passwordSet ? 'A password is set. Type a new one to replace it, or leave this empty to keep it.' : 'The mailbox password (or an app password where the provider requires one).';
  return (
    <FormField id={id} label="Password" help={help} error={error}>
      <input
        {...fieldA11y(id, 'password', true, !!error)}
        type="password"
        value={value}
        onChange={(e) => onChange(e.target.value)}
        placeholder={passwordSet ? SET_PLACEHOLDER : undefined}
        autoComplete="new-password"
        spellCheck={false}
      />
    </FormField>
  );
}
