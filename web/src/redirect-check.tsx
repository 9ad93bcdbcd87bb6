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
