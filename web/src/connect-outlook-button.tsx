import type { TokenStatus } from './api.ts';
import { Spinner } from './spinner.tsx';

interface ConnectOutlookButtonProps {
  tokenStatus: TokenStatus;
  connecting: boolean;
  onClick: () => void;
}

/** "Connect your Outlook account": the primary action until the token is valid. */
export function ConnectOutlookButton({ tokenStatus, connecting, onClick }: ConnectOutlookButtonProps) {
  return (
    <button
      type="button"
      className={tokenStatus === 'valid' ? 'btn btn-secondary' : 'btn btn-primary'}
      onClick={onClick}
      disabled={connecting}
      aria-busy={connecting || undefined}
    >
      {connecting && <Spinner />}
      Connect your Outlook account
    </button>
  );
}
