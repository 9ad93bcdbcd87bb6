import { useEffect, useState } from 'react';

interface CopyButtonProps {
  text: string;
  /** id of the input holding the text (used as a fallback when the Clipboard API is unavailable). */
  inputId: string;
}

/** A "Copy" button that puts text on the clipboard and confirms with "Copied". */
export function CopyButton({ text, inputId }: CopyButtonProps) {
  const [status, setStatus] = useState<'idle' | 'copied' | 'failed'>('idle');

  useEffect(() => {
    if (status === 'idle') return;
    const t = window.setTimeout(() => setStatus('idle'), 4000);
    return () => window.clearTimeout(t);
  }, [status]);

  async function copy() {
    try {
      if (!navigator.clipboard) throw new Error('no clipboard API');
      await navigator.clipboard.writeText(text);
      setStatus('copied');
    } catch {
      // Plain-http deployments have no Clipboard API: select the text and use the legacy command.
      const input = document.getElementById(inputId);
      if (input instanceof HTMLInputElement) {
        input.focus();
        input.select();
        setStatus(document.execCommand('copy') ? 'copied' : 'failed');
      } else setStatus('failed');
    }
  }

  return (
    <>
      <button type="button" className="btn btn-secondary" onClick={copy}>
        Copy
      </button>
      <span className="copy-status" role="status">
        {status === 'copied' ? 'Copied' : status === 'failed' ? 'Select the text and copy it manually' : ''}
      </span>
    </>
  );
}
