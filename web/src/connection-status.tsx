import type { ReactNode } from 'react';
import type { ChecklistItem, ServerNotice, TokenStatus } from './api.ts';
import { renewalText } from './connection-common.tsx';
import { ServerChecklist } from './server-checklist.tsx';
import { TokenStatusBadge } from './token-status-badge.tsx';

interface ConnectionStatusProps {
  server: {
    tokenStatus: TokenStatus;
    tokenStatusReason: string | null;
    connectedAccount: string | null;
    checklist: ChecklistItem[];
    notice?: ServerNotice | null;
    clientCredential?: 'secret' | 'certificate';
    certificate?: { notAfter: string } | null;
    clientSecretExpiresAt?: string | null;
  };
  /** Facts listed before Connected account. */
  factsBefore?: ReactNode;
  /** Facts listed after Sign-in (before the checklist). */
  factsAfter?: ReactNode;
  /** Shown below the facts. */
  children?: ReactNode;
  /** false for servers without OAuth: no token, so only the checklist. */
  tokens?: boolean;
  /** The provider whose guide the checklist links to. */
  guide?: string | null;
}

/** The Connection panel's token status, connected account, when a person must sign in again (if ever), and checklist. */
export function ConnectionStatus({ server, factsBefore, factsAfter, children, tokens = true, guide }: ConnectionStatusProps) {
  return (
    <div className="connection-status">
      {tokens && (
        <p className="status-line">
          <span className="status-label">Status</span>
          <TokenStatusBadge status={server.tokenStatus} />
        </p>
      )}
      {tokens && server.tokenStatusReason && <p className="status-reason">{server.tokenStatusReason}</p>}
      <dl className="facts">
        {factsBefore}
        {tokens && (
          <>
            <div>
              <dt>Connected account</dt>
              <dd>{server.connectedAccount ?? '—'}</dd>
            </div>
            <div>
              <dt>Sign-in</dt>
              <dd>{renewalText(server)}</dd>
            </div>
          </>
        )}
        {factsAfter}
        {server.checklist.length > 0 && (
          <div>
            <dt id="connection-checklist-label">Checklist</dt>
            <dd>
              <ServerChecklist items={server.checklist} compact labelledBy="connection-checklist-label" guide={guide} />
            </dd>
          </div>
        )}
      </dl>
      {children}
    </div>
  );
}
