import { useState } from 'react';

/** The origin of a URL, or null when it cannot be parsed. */
function originOf(url: string): string | null {
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}

/**
 * Redirect URL self-check: warns when this page was opened at another origin (scheme, host or port)
 * than the redirect URL the provider will send the browser back to — usually a proxy without BASE_URL.
 * The redirect path names the provider (/oauth2/outlook/callback, /oauth2/gmail/callback).
 */
export function RedirectCheck({ redirectUri }: { redirectUri: string }) {
  const google = /\/oauth2\/gmail\//.test(redirectUri);
  const here = window.location.origin;
  const there = redirectUri ? originOf(redirectUri) : null;
  if (!there || there === here) return null;
  return (
    <div className="alert alert-warning redirect-check">
      You opened Mailroom at {here}, but the redirect URL {google ? 'Google' : 'Microsoft'} will use is {redirectUri}. If Mailroom runs
      behind a proxy, set BASE_URL to the address people use, or {google ? 'Google will answer redirect_uri_mismatch' : 'Microsoft will answer AADSTS50011'}.
    </div>
  );
}

/** Where two URLs first differ, in words: the admin pastes what Azure or Google holds and reads the verdict. */
export function compareRedirect(expected: string, registered: string): { same: boolean; text: string } {
  const got = registered.trim();
  if (got === expected) return { same: true, text: '✓ Identical: the provider will accept this redirect URL.' };
  const a = originOf(expected);
  const b = originOf(got);
  if (!b) return { same: false, text: '✗ This is not a URL: paste the whole redirect URI, starting with http:// or https://.' };
  if (a && b !== a) return { same: false, text: `✗ The origin differs: registered ${b}, but Mailroom uses ${a} (scheme, host and port must match).` };
  if (got === `${expected}/`) return { same: false, text: '✗ The registered URL ends with an extra “/”: remove it.' };
  if (got.toLowerCase() === expected.toLowerCase()) return { same: false, text: '✗ Only upper and lower case differ: the path must match exactly.' };
  return { same: false, text: `✗ The path differs: registered ${new URL(got).pathname}, but Mailroom uses ${new URL(expected).pathname}.` };
}

/** Paste the registered redirect URL to have it compared with this installation's. */
export function RedirectCompare({ idPrefix, redirectUri }: { idPrefix: string; redirectUri: string }) {
  const [registered, setRegistered] = useState('');
  const id = `${idPrefix}redirectUri-compare`;
  const verdict = registered.trim() === '' ? null : compareRedirect(redirectUri, registered);
  return (
    <div className="redirect-compare">
      <label htmlFor={id}>Check a registered redirect URL</label>
      <input id={id} type="url" className="input-wide" value={registered} onChange={(e) => setRegistered(e.target.value)} placeholder="Paste the URL from the app registration" autoComplete="off" spellCheck={false} />
      {verdict && (
        <p className={verdict.same ? 'redirect-compare-ok' : 'redirect-compare-differs'} role="status">
          {verdict.text}
        </p>
      )}
    </div>
  );
}
