import { type Browser, type BrowserContext, chromium } from 'playwright-core';

/** Debian's Chromium, headless, with the flags this closed network needs (no background connections). */
export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * The stand-in Microsoft sign-in server uses a test CA that Chromium does not know; only the browser
 * skips that check, Mailroom itself verifies the CA through NODE_EXTRA_CA_CERTS.
 */
export function newContext(browser: Browser): Promise<BrowserContext> {
  return browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
}
