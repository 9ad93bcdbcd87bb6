import type { ReactNode } from 'react';

interface FormFieldProps {
  /** id of the control; the help text and the error message get `${id}-help` and `${id}-error`. */
  id: string;
  label: ReactNode;
  /** The label is plain text, not a <label> for the control (the control names itself). */
  plainLabel?: boolean;
  help?: ReactNode;
  error?: string;
  /** The large name field at the top of a form (it is not marked as having an error). */
  title?: boolean;
  /** The control, and anything shown right below it (before the help and the error). */
  children: ReactNode;
  /** Shown after the help and the error. */
  after?: ReactNode;
}

/** A form row: label, control, help text and error message. */
export function FormField({ id, label, plainLabel, help, error, title, children, after }: FormFieldProps) {
  return (
    <div className={title ? 'field field-title' : error ? 'field has-error' : 'field'}>
      {plainLabel ? <span className="field-label">{label}</span> : <label htmlFor={id}>{label}</label>}
      <div className="field-control">
        {children}
        {help && (
          <p id={`${id}-help`} className="field-help">
            {help}
          </p>
        )}
        {error && (
          <p id={`${id}-error`} className="field-error">
            {error}
          </p>
        )}
        {after}
      </div>
    </div>
  );
}
