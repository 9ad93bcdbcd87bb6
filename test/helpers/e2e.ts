import type { Page } from 'playwright-core';

/** Polls `probe` until it returns something other than undefined. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000, intervalMs = 150): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface ApiResult {
  status: number;
  json: any;
  text: string;
}

/** JSON calls to a running Mailroom with an API key, as an ERP would make them. */
export function apiClient(baseUrl: () => string, key: () => string) {
  return async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResult> => {
    const r = await fetch(`${baseUrl()}${path}`, {
      method,
      headers: { authorization: `Bearer ${key()}`, ...(body !== undefined && { 'content-type': 'application/json' }), ...headers },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await r.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: r.status, json, text };
  };
}

type Api = ReturnType<typeof apiClient>;

/** Waits until a queued message is sent, failed or held, and returns it as GET /api/v1/messages/{id} shows it. */
export function settledMessage(api: Api, id: string, timeoutMs = 60_000): Promise<any> {
  return waitFor(`message ${id} to settle`, async () => {
    const x = (await api('GET', `/api/v1/messages/${id}`)).json;
    return ['sent', 'failed', 'held'].includes(x?.state) ? x : undefined;
  }, timeoutMs);
}

/** Logs in on Mailroom's login page as a person would. */
export async function logIn(page: Page, baseUrl: string, admin: { email: string; password: string }): Promise<void> {
  await page.goto(`${baseUrl}/login`);
  await page.getByLabel('Email', { exact: true }).fill(admin.email);
  await page.getByLabel('Password', { exact: true }).fill(admin.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((u) => !u.pathname.startsWith('/login'));
}
