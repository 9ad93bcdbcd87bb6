import { useEffect, useRef } from 'react';

interface ErrorSummaryProps {
  /** Field name → message, as the API (or the form itself) reported them. */
  errors: Record<string, string>;
  /** The API's overall message. */
  message: string | null;
  /** Field names in the order the form shows them; fields not listed go last. */
  order: string[];
  /** The label to link to for a field the form shows, or undefined to list its message as text. */
  linkLabel: (field: string) => string | undefined;
  fieldId: (field: string) => string;
}

/** The "fields need attention" box above a form: focused when errors arrive, each entry links to its field. */
export function ErrorSummary({ errors, message, order, linkLabel, fieldId }: ErrorSummaryProps) {
  const ref = useRef<HTMLDivElement>(null);

  useEffect(() => {
    if (Object.keys(errors).length > 0) ref.current?.focus();
  }, [errors]);

  const fieldMessages = Object.values(errors);
  if (fieldMessages.length === 0) return null;
  // The API's overall message, unless it only repeats a field message (e.g. "<first field message> (and 2 more)").
  const extra = message && !fieldMessages.some((m) => message.includes(m)) ? message : null;
  const rank = (f: string) => (order.includes(f) ? order.indexOf(f) : order.length);
  const entries = Object.entries(errors).sort((a, b) => rank(a[0]) - rank(b[0]));

  return (
    <div className="alert alert-error" role="alert" tabIndex={-1} ref={ref}>
      <p className="alert-title">
        {extra ?? (fieldMessages.length === 1 ? 'One field needs attention:' : `${fieldMessages.length} fields need attention:`)}
      </p>
      <ul className="error-summary">
        {entries.map(([f, msg]) => {
          const label = linkLabel(f);
          return label !== undefined ? (
            <li key={f}>
              <a
                href={`#${fieldId(f)}`}
                onClick={(e) => {
                  e.preventDefault();
                  document.getElementById(fieldId(f))?.focus();
                }}
              >
                {label}
              </a>
            </li>
          ) : (
            <li key={f}>{msg}</li>
          );
        })}
      </ul>
    </div>
  );
}
