import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { logIn } from './e2e.ts';

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

/**
 * Creates an admin through the CLI, logs in on Mailroom's login page in a fresh Chromium, runs `fn`
 * with the page and closes the browser whatever happens.
 */
export async function asAdminInBrowser<T>(
  mailroom: { baseUrl: string; cli(...args: string[]): Promise<string> },
  admin: { email: string; password: string },
  fn: (page: Page) => Promise<T>,
): Promise<T> {
  await mailroom.cli('admin', 'create', '--email', admin.email, '--password', admin.password);
  const browser = await launchChromium();
  try {
    const page = await (await newContext(browser)).newPage();
    page.setDefaultTimeout(30_000);
    await logIn(page, mailroom.baseUrl, admin);
    return await fn(page);
  } finally {
    await browser.close();
  }
}

/** Chromium's own line for an HTTP answer of 4xx: the page asked, was refused and shows why (a 5xx is an error). */
const REFUSED_REQUEST = /^Failed to load resource: the server responded with a status of 4\d\d /;

/**
 * Every console error and uncaught exception of `page` from now on, as "console: …" / "page error: …"
 * lines: a test asserts the list is empty after each step it wants clean. With `refused: 'allowed'`,
 * answers of 4xx (a validation error, a failed check explained on the page) are the product at work,
 * not errors of the page; a test that only opens pages counts them too.
 */
export function watchPageErrors(page: Page, opts: { refused: 'allowed' | 'error' }): string[] {
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() !== 'error' || (opts.refused === 'allowed' && REFUSED_REQUEST.test(m.text()))) return;
    errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  return errors;
}
