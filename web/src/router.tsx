// A tiny history-based router: pushState/replaceState + popstate, no dependencies.
import { useEffect, useState, useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent } from 'react';

const listeners = new Set<() => void>();

function notify(): void {
  for (const l of listeners) l();
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  window.addEventListener('popstate', listener);
  return () => {
    listeners.delete(listener);
    window.removeEventListener('popstate', listener);
  };
}

function snapshot(): string {
  return window.location.pathname + window.location.search + window.location.hash;
}

export interface NavigateOptions {
  replace?: boolean;
  /** Stored in history.state; read back with useLocation().state (e.g. a one-off notice). */
  state?: RouteState;
}

export interface RouteState {
  notice?: string;
}

export function navigate(to: string, opts: NavigateOptions = {}): void {
  // Paths the server owns (e.g. the OAuth callback after a login) need a real page load.
  if (to.startsWith('/oauth2/') || to.startsWith('/api/')) {
    if (opts.replace) window.location.replace(to);
    else window.location.assign(to);
    return;
  }
  const state = opts.state ?? null;
  if (opts.replace) window.history.replaceState(state, '', to);
  else {
    window.history.pushState(state, '', to);
    window.scrollTo(0, 0);
  }
  notify();
}

export interface Location {
  pathname: string;
  search: string;
  query: URLSearchParams;
  state: RouteState | null;
  /** pathname + search, e.g. for a `next` parameter */
  path: string;
  /** "#step-3", or "" */
  hash: string;
}

export function useLocation(): Location {
  useSyncExternalStore(subscribe, snapshot);
  const { pathname, search, hash } = window.location;
  const raw: unknown = window.history.state;
  const state = typeof raw === 'object' && raw !== null ? (raw as RouteState) : null;
  return { pathname, search, query: new URLSearchParams(search), state, path: pathname + search, hash };
}

export type LinkProps = Omit<AnchorHTMLAttributes<HTMLAnchorElement>, 'href'> & { to: string };

export function Link({ to, onClick, target, ...rest }: LinkProps) {
  function handleClick(e: MouseEvent<HTMLAnchorElement>) {
    onClick?.(e);
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    if (target && target !== '_self') return;
    e.preventDefault();
    navigate(to);
  }
  return <a href={to} target={target} onClick={handleClick} {...rest} />;
}

/**
 * A one-off notice passed with navigate(..., { state: { notice } }): read once when the page mounts,
 * then removed from the history entry so a reload does not show it again.
 */
export function useFlashNotice(): [string | null] {
  const [notice] = useState<string | null>(() => {
    const raw: unknown = window.history.state;
    return typeof raw === 'object' && raw !== null && typeof (raw as RouteState).notice === 'string'
      ? ((raw as RouteState).notice ?? null)
      : null;
  });
  useEffect(() => {
    if (window.history.state !== null) window.history.replaceState(null, '', window.location.href);
  }, []);
  return [notice];
}
