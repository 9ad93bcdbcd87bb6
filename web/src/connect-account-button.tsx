import type { TokenStatus } from './api.ts';
import { Spinner } from './spinner.tsx';

interface ConnectAccountButtonProps {
  /** The provider's label from the API, e.g. "Connect your Gmail account". */
  label: string;
  tokenStatus: TokenStatus;
  connecting: boolean;
  onClick: () => void;
}

/** "Connect your … account": the primary action until the token is valid. */
export function ConnectAccountButton({ label, tokenStatus, connecting, onClick }: ConnectAccountButtonProps) {
  return (
    <button
      type="button"
      className={tokenStatus === 'valid' ? 'btn btn-secondary' : 'btn btn-primary'}
      onClick={onClick}
      disabled={connecting}
      aria-busy={connecting || undefined}
    >
      {connecting && <Spinner />}
      {label}
    </button>
  );
}
