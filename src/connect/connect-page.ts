import type { ConnectPage } from './connect-link-service.ts';

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * The public page's headers: nothing loads but its own nonce'd style, it cannot be framed, the link's
 * token leaves in no Referer, no cache keeps it, and its one form may only go to Mailroom and, by the
 * redirect that follows, to the provider's sign-in.
 */
export function connectPageHeaders(page: ConnectPage, nonce: string): Record<string, string> {
  const formTargets = ["'self'", ...(page.button?.redirectsTo ?? [])].join(' ');
  return {
    'content-security-policy': `default-src 'none'; style-src 'nonce-${nonce}'; img-src 'none'; form-action ${formTargets}; frame-ancestors 'none'; base-uri 'none'`,
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  };
}

/** Plain HTML: no script, no Mailroom account, one button. */
export function renderConnectPage(page: ConnectPage, nonce: string): string {
  const grants = page.grants?.length ? `<p>What you allow:</p><ul>${page.grants.map((g) => `<li>${escape(g)}</li>`).join('')}</ul>` : '';
  // text/plain: the form carries no field, and Mailroom parses no urlencoded bodies.
  const button = page.button
    ? `<form method="post" action="${escape(page.button.action)}" enctype="text/plain"><button type="submit">${escape(page.button.label)}</button></form>`
    : '';
  const back = page.back ? `<p><a href="${escape(page.back.href)}">${escape(page.back.label)}</a></p>` : '';
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>${escape(page.title)}</title><style nonce="${nonce}">body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;line-height:1.5}` +
    `button{font-size:1rem;padding:.6rem 1.2rem;border-radius:.3rem;border:1px solid #0b5cad;background:#0b5cad;color:#fff;cursor:pointer}</style></head>` +
    `<body><main><h1>${escape(page.title)}</h1>${page.lines.map((l) => `<p>${escape(l)}</p>`).join('')}${grants}${button}${back}</main></body></html>`
  );
}
