import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { tokenAad } from '../../src/oauth/token-manager.ts';
import { createSealer } from '../../src/secrets/sealer.ts';
import type { TokenResponse } from '../peers/get-token.ts';
import type { Peers } from '../peers/index.ts';

// The machine's PostgreSQL (127.0.0.1:5432, trust auth); each test makes its own database and drops it.
const ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/test';

export interface TestPostgres {
  url: string;
  /** One query on a fresh connection (for assertions on the shared state). */
  query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<R[]>;
  drop(): Promise<void>;
}

async function admin(text: string): Promise<void> {
  const c = new pg.Client(ADMIN_URL);
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

export async function createTestDatabase(prefix = 'mailroom_cluster'): Promise<TestPostgres> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  await admin(`create database ${name}`);
  const url = `postgres://postgres@127.0.0.1:5432/${name}`;
  return {
    url,
    async query(text, values) {
      const c = new pg.Client(url);
      await c.connect();
      try {
        return (await c.query(text, values)).rows;
      } finally {
        await c.end();
      }
    },
    async drop() {
      await admin(`select pg_terminate_backend(pid) from pg_stat_activity where datname = '${name}' and pid <> pg_backend_pid()`);
      await admin(`drop database if exists ${name}`);
    },
  };
}

/** As storeTokens (connect-directly.ts) does for SQLite: a completed connect, written into PostgreSQL. */
export async function storeTokensPg(db: TestPostgres, key: Buffer, serverId: string, account: string, t: TokenResponse, tenantId: string, opts: { accessExpiresAt?: Date } = {}): Promise<void> {
  const sealer = createSealer(key);
  const now = new Date().toISOString();
  await db.query('delete from oauth_tokens where mail_server_id = $1', [serverId]);
  await db.query(
    `insert into oauth_tokens (mail_server_id, status, status_reason, account, tenant_id, scope, access_token_sealed,
       access_token_expires_at, refresh_token_sealed, version, connected_at, refreshed_at, updated_at)
     values ($1, 'valid', null, $2, $3, $4, $5, $6, $7, 1, $8, $8, $8)`,
    [
      serverId,
      account,
      tenantId,
      t.scope,
      sealer.seal(t.access_token, tokenAad(serverId, 'access_token')),
      (opts.accessExpiresAt ?? new Date(Date.now() + t.expires_in * 1000)).toISOString(),
      sealer.seal(t.refresh_token, tokenAad(serverId, 'refresh_token')),
      now,
    ],
  );
}

/**
 * What every instance of a test cluster shares: the database, the one secret key (required on
 * PostgreSQL), the test identity platform and its CA; `extra` is the test's own settings.
 */
export function clusterEnv(db: TestPostgres, key: Buffer, peers: Peers, extra: Record<string, string> = {}, databaseUrl = db.url): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    MAILROOM_SECRET_KEY: key.toString('base64'),
    MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost,
    NODE_EXTRA_CA_CERTS: peers.caFile,
    LOG_LEVEL: 'warn',
    ...extra,
  };
}

/** The connection slot rows (`connections:<gate>:<i>`) whose name starts with `prefix`, as `name=holder`. */
export async function slotHolders(db: TestPostgres, prefix = 'connections:'): Promise<string[]> {
  return (await db.query<{ name: string; holder: string }>('select name, holder from leases where name like $1 order by name', [`${prefix}%`])).map((r) => `${r.name}=${r.holder}`);
}

/** Records every instance seen holding one of those slots, every `everyMs`, until `stop()`. */
export function watchSlotHolders(db: TestPostgres, prefix: string, everyMs: number): { seen: Set<string>; stop(): void } {
  const seen = new Set<string>();
  const timer = setInterval(() => void slotHolders(db, prefix).then((rows) => rows.forEach((r) => seen.add(r.split('=')[1]!)), () => undefined), everyMs);
  timer.unref(); // a failed assertion must not keep the file running
  return { seen, stop: () => clearInterval(timer) };
}

type Api = (method: string, path: string, body?: unknown) => Promise<{ status: number; text: string; json: any }>;

/** `n` messages from `from`, POSTed 60 at a time round-robin over `apis` (as a load balancer spreads them); their Message-IDs. */
export async function sendRoundRobin(apis: Api[], from: string, n: number, tag: string): Promise<Set<string>> {
  const accepted = new Set<string>();
  for (let i = 0; i < n; i += 60) {
    const replies = await Promise.all(
      Array.from({ length: Math.min(60, n - i) }, (_, j) => apis[(i + j) % apis.length]!('POST', '/api/v1/messages', { from, to: ['archive@remote.example'], subject: `${tag} ${i + j}`, text: 'x' })),
    );
    for (const r of replies) {
      if (r.status !== 202) throw new Error(`POST /api/v1/messages: ${r.status} ${r.text}`);
      accepted.add(r.json.messageId);
    }
  }
  return accepted;
}
