import { useState } from 'react';
import { ApiError, type Problem } from './api.ts';
import { Spinner } from './spinner.tsx';

const DISCONNECT_CONFIRM = "Disconnect? Mailroom forgets this mailbox's tokens; mail waits until you connect again.";

interface DisconnectButtonProps<T> {
  /** The API call; resolves to the updated server. */
  disconnect: () => Promise<T>;
  onDisconnected: (server: T) => void;
  onError: (problem: Problem) => void;
  disabled?: boolean;
}

/** "Disconnect" after a confirmation: Mailroom forgets the mailbox's tokens. */
export function DisconnectButton<T>({ disconnect, onDisconnected, onError, disabled = false }: DisconnectButtonProps<T>) {
  const [busy, setBusy] = useState(false);

  async function run() {
    if (!window.confirm(DISCONNECT_CONFIRM)) return;
    setBusy(true);
    try {
      onDisconnected(await disconnect());
    } catch (err) {
      onError(
        err instanceof ApiError
          ? { code: err.code, message: err.message, fix: err.fix, evidence: err.evidence }
          : { message: String(err) },
      );
    } finally {
      setBusy(false);
    }
  }

  return (
    <button
      type="button"
      className="btn btn-danger"
      onClick={run}
      disabled={busy || disabled}
      aria-busy={busy || undefined}
    >
      {busy && <Spinner />}
      Disconnect
    </button>
  );
}
