import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../../src/config/config.ts';
import { buildApp } from '../../src/http/app.ts';
import { createLogger } from '../../src/logger.ts';
import { createMailroom, type Mailroom } from '../../src/mailroom.ts';

export interface TestMailroom {
  mr: Mailroom;
  app: FastifyInstance;
  dataDir: string;
  /** Every log line written so far, to prove nothing secret was logged. */
  logs: string[];
  close(): Promise<void>;
}

/** A real Mailroom on a fresh SQLite file in a temp dir, HTTP through inject(). */
export async function startTestMailroom(env: Record<string, string> = {}, opts: { now?: () => Date } = {}): Promise<TestMailroom> {
  const dataDir = mkdtempSync(join(tmpdir(), 'mailroom-test-'));
  const config = loadConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'debug', ...env });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(String(chunk));
      cb();
    },
  });
  const mr = await createMailroom(config, createLogger(config.logLevel, sink), opts);
  const app = await buildApp(mr);
  await app.ready();
  return {
    mr,
    app,
    dataDir,
    logs,
    async close() {
      await app.close();
      await mr.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface Agent {
  csrfToken: string;
  cookie: string;
  request(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, body?: unknown): Promise<{ status: number; json: any; body: string; headers: Record<string, unknown> }>;
}

export const ADMIN = { email: 'admin@example.test', password: 'correct horse battery' };

/** Creates the admin (once) and logs in through the API like the UI does. */
export async function loginAgent(t: TestMailroom, who = ADMIN): Promise<Agent> {
  if (!(await t.mr.admins.checkCredentials(who.email, who.password))) await t.mr.admins.createAdmin(who.email, who.password);
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/session', payload: who });
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.body}`);
  const cookie = res.cookies.map((c) => `${c.name}=${c.value}`).join('; ');
  const csrfToken = res.json().csrfToken as string;
  return {
    csrfToken,
    cookie,
    async request(method, url, body) {
      const r = await t.app.inject({
        method,
        url,
        headers: { cookie, ...(method !== 'GET' && { 'x-csrf-token': csrfToken }) },
        ...(body !== undefined && { payload: body as object }),
      });
      let json: unknown;
      try {
        json = r.json();
      } catch {
        json = undefined;
      }
      return { status: r.statusCode, json, body: r.body, headers: r.headers };
    },
  };
}

export const VALID_SERVER = {
  name: 'Outlook — sales',
  authType: 'outlook_oauth',
  username: 'sales@contoso.example',
  clientId: '3f0c2d1e-5b6a-4c7d-8e9f-0a1b2c3d4e5f',
  clientSecret: 'Xy8Q~s3cr3t.Value-Only_Shown~Once1234567',
  tenant: 'common',
};
