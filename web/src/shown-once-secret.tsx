import { useEffect, useRef, type ReactNode } from 'react';
import { CopyButton } from './copy-button.tsx';

interface ShownOnceSecretProps {
  /** Added to the box's classes. */
  className?: string;
  /** What was created, e.g. "API key “ERP” created." */
  message: ReactNode;
  /** id of the read-only input; its help text has the id `${inputId}-help`. */
  inputId: string;
  label: string;
  secret: string;
  onDone: () => void;
  /** Shown between the warning and the Done button. */
  children?: ReactNode;
}

/** A secret just created, shown once with Copy (focused and selected), "Copy it now" and Done. */
export function ShownOnceSecret({ className, message, inputId, label, secret, onDone, children }: ShownOnceSecretProps) {
  const inputRef = useRef<HTMLInputElement>(null);
  const helpId = `${inputId}-help`;

  useEffect(() => {
    inputRef.current?.focus();
    inputRef.current?.select();
  }, [secret]);

  return (
    <div className={className ? `alert alert-success new-key ${className}` : 'alert alert-success new-key'}>
      <p className="alert-message">{message}</p>
      <div className="new-key-row">
        <label htmlFor={inputId}>{label}</label>
        <div className="input-with-button">
          <input
            id={inputId}
            ref={inputRef}
            type="text"
            className="mono"
            readOnly
            value={secret}
            aria-describedby={helpId}
            onFocus={(e) => e.currentTarget.select()}
            spellCheck={false}
          />
          <CopyButton text={secret} inputId={inputId} />
        </div>
      </div>
      <p id={helpId} className="new-key-warning">
        Copy it now: it will not be shown again.
      </p>
      {children}
      <div className="button-row">
        <button type="button" className="btn btn-secondary" onClick={onDone}>
          Done
        </button>
      </div>
    </div>
  );
}
