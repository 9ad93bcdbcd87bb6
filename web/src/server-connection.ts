import type { AuthType, Problem, TokenStatus } from './api.ts';
import type { StatusOf } from './status-badge.tsx';

/** What a server list needs to say where a server's connection stands. */
export interface ServerConnectionFacts {
  authType?: AuthType;
  tokenStatus: TokenStatus;
  tokenStatusReason?: string | null;
  lastError: (Problem & { code?: string }) | null;
  /** Incoming servers only. */
  active?: boolean;
}

/** The list filter's states (the API's `state` values). */
export type ServerState = 'connected' | 'needs_attention' | 'not_connected' | 'disabled';

export const SERVER_STATE_OPTIONS: { value: ServerState; label: string }[] = [
  { value: 'connected', label: 'Connected' },
  { value: 'needs_attention', label: 'Needs attention' },
  { value: 'not_connected', label: 'Not connected' },
  { value: 'disabled', label: 'Disabled' },
];

export interface ServerConnection {
  state: ServerState;
  badge: StatusOf<'connection'>;
  /** The badge's words, e.g. "Connection failed — 535 5.7.3 Authentication unsuccessful". */
  label: string;
  /** The whole reason, for the tooltip. */
  detail: string | null;
}

/** The first sentence of a reason, at most ~60 characters: enough to tell failures apart in a list. */
export function shortReason(text: string): string {
  const first = text.split(/(?<=[.!?])\s/)[0] ?? text;
  return first.length > 60 ? `${first.slice(0, 57).trimEnd()}…` : first.replace(/\.$/, '');
}

/** Where a server's connection stands, in the words a list shows: more than "Not connected". */
export function serverConnection(s: ServerConnectionFacts): ServerConnection {
  const oauth = s.authType === undefined || s.authType === 'outlook_oauth' || s.authType === 'gmail_oauth';
  const error = s.lastError?.message ?? null;
  if (s.active === false) return { state: 'disabled', badge: 'not_connected', label: 'Disabled', detail: error };
  if (oauth && s.tokenStatus === 'reconnect_needed') {
    return { state: 'needs_attention', badge: 'needs_sign_in', label: 'Needs sign-in', detail: s.tokenStatusReason ?? error };
  }
  if (error) return { state: 'needs_attention', badge: 'failed', label: `Connection failed — ${shortReason(error)}`, detail: error };
  if (!oauth) return { state: 'connected', badge: 'no_sign_in', label: 'Ready', detail: null };
  if (s.tokenStatus === 'valid') return { state: 'connected', badge: 'token_valid', label: 'Token Valid', detail: null };
  return { state: 'not_connected', badge: 'not_connected', label: 'Not connected', detail: s.tokenStatusReason ?? 'No account has been connected yet.' };
}
