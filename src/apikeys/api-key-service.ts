import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { MailroomError, validationError } from '../errors/errors.ts';
import { parseInput } from '../errors/parse-input.ts';
import {
  type ApiKeyRecord,
  type ApiKeyScope,
  findActiveApiKeyByHash,
  insertApiKey,
  listApiKeys,
  revokeApiKey,
  touchApiKey,
} from '../storage/api-key-store.ts';
import type { Db } from '../storage/database.ts';
import { listMailServers } from '../storage/mail-server-store.ts';

export type { ApiKeyRecord, ApiKeyScope };

export const API_KEY_SCOPES = ['send', 'outbox:read', 'inbound:read', 'connect', 'admin'] as const satisfies readonly ApiKeyScope[];

/** `scope` (one name) is the shorthand older clients send; `read`, the scope before 0016, stands for what the migration gave such keys. */
const SHORTHAND: Record<string, ApiKeyScope[]> = {
  send: ['send'],
  'outbox:read': ['outbox:read'],
  'inbound:read': ['inbound:read'],
  connect: ['connect'],
  admin: ['admin'],
  read: ['outbox:read', 'inbound:read'],
};

const SCOPE_ERROR = `Each scope is one of ${API_KEY_SCOPES.join(', ')}`;
const serverIds = (what: string) =>
  z
    .array(z.string({ error: `Each ${what} id is text` }).min(1).max(100), { error: `A list of ${what} ids` })
    .min(1, { error: `Name at least one ${what}, or leave the field out for every one` })
    .max(100, { error: `At most 100 ${what}s` });

export const createApiKeySchema = z
  .strictObject({
    name: z.string({ error: 'Give the key a name, e.g. "ERP production"' }).trim().min(1, { error: 'Give the key a name, e.g. "ERP production"' }).max(100, { error: 'At most 100 characters' }),
    scopes: z.array(z.enum(API_KEY_SCOPES, { error: SCOPE_ERROR }), { error: 'A list of scopes, e.g. ["send"]' }).min(1, { error: 'Choose at least one scope' }).max(5).optional(),
    scope: z.enum(Object.keys(SHORTHAND) as [string, ...string[]], { error: `Scope must be one of ${API_KEY_SCOPES.join(', ')}` }).optional(),
    mailServerIds: serverIds('outgoing mail server').optional(),
    incomingServerIds: serverIds('incoming mail server').optional(),
  })
  .superRefine((v, ctx) => {
    if (v.scopes === undefined && v.scope === undefined) ctx.addIssue({ code: 'custom', path: ['scopes'], message: 'Choose at least one scope' });
    if (v.scopes !== undefined && v.scope !== undefined) ctx.addIssue({ code: 'custom', path: ['scope'], message: 'Give scopes or scope, not both' });
  });

/**
 * Whether a key holding `scopes` may make a request that needs any one of `need`. A session admin
 * may do everything, and so may an admin key.
 */
export function scopeAllows(scopes: readonly ApiKeyScope[], ...need: ApiKeyScope[]): boolean {
  return scopes.includes('admin') || need.some((n) => scopes.includes(n));
}

const hashKey = (key: string) => createHash('sha256').update(key).digest('base64url');

export class ApiKeyService {
  constructor(private readonly db: Db, private readonly now: () => Date = () => new Date()) {}

  /** The key is returned once and only its SHA-256 is stored (keys are 256-bit random: no slow hash needed). */
  async create(body: unknown, createdBy: string | null): Promise<ApiKeyRecord & { key: string }> {
    const input = parseInput(createApiKeySchema, body);
    const scopes = [...new Set(input.scopes ?? SHORTHAND[input.scope!]!)].sort((a, b) => API_KEY_SCOPES.indexOf(a) - API_KEY_SCOPES.indexOf(b));
    const mailServerIds = input.mailServerIds ? [...new Set(input.mailServerIds)] : null;
    const incomingServerIds = input.incomingServerIds ? [...new Set(input.incomingServerIds)] : null;
    await this.checkLimits(scopes, mailServerIds, incomingServerIds);
    const id = randomUUID();
    const key = `mr_${randomBytes(32).toString('base64url')}`;
    const rec = await insertApiKey(this.db, {
      id,
      name: input.name,
      scopes,
      mailServerIds,
      incomingServerIds,
      prefix: key.slice(0, 10),
      createdBy,
      createdAt: this.now().toISOString(),
      keyHash: hashKey(key),
    });
    return { ...rec, key };
  }

  /** Limits name servers that exist, in the right direction, and only where a scope uses them. */
  private async checkLimits(scopes: ApiKeyScope[], mailServerIds: string[] | null, incomingServerIds: string[] | null): Promise<void> {
    const fields: Record<string, string> = {};
    if (scopes.includes('admin') && (mailServerIds || incomingServerIds)) {
      // An admin key can change any server and create keys: a limit on it would limit nothing.
      fields[mailServerIds ? 'mailServerIds' : 'incomingServerIds'] = 'An admin key cannot be limited to servers (it can change them); choose send, outbox:read or inbound:read instead';
    }
    if (mailServerIds && !scopes.some((s) => s === 'send' || s === 'outbox:read')) fields.mailServerIds ??= 'Outgoing servers limit the send and outbox:read scopes; this key has neither';
    if (incomingServerIds && !scopes.includes('inbound:read')) fields.incomingServerIds ??= 'Incoming servers limit the inbound:read scope; this key does not have it';
    const check = async (list: string[] | null, direction: 'outgoing' | 'incoming', field: string) => {
      if (!list) return;
      const known = new Set((await listMailServers(this.db, direction)).map((s) => s.id));
      list.forEach((sid, i) => {
        if (!known.has(sid)) fields[`${field}.${i}`] ??= `No ${direction} mail server with id ${sid}`;
      });
    };
    await check(mailServerIds, 'outgoing', 'mailServerIds');
    await check(incomingServerIds, 'incoming', 'incomingServerIds');
    if (Object.keys(fields).length) throw validationError(fields);
  }

  list(): Promise<ApiKeyRecord[]> {
    return listApiKeys(this.db);
  }

  async revoke(id: string): Promise<void> {
    if (!(await revokeApiKey(this.db, id, this.now().toISOString()))) {
      throw new MailroomError('MR_NOT_FOUND', 'No active API key with this id.');
    }
  }

  private turn: Map<string, Promise<ApiKeyRecord | undefined>> | undefined;

  /**
   * Resolves a presented key. Requests in the same event-loop turn share one lookup per key; the next
   * turn looks again, so a revocation applies to the very next request.
   */
  authenticate(key: string): Promise<ApiKeyRecord | undefined> {
    if (!key.startsWith('mr_')) return Promise.resolve(undefined);
    if (!this.turn) {
      this.turn = new Map();
      setImmediate(() => (this.turn = undefined));
    }
    let p = this.turn.get(key);
    if (!p) {
      p = this.lookup(key);
      this.turn.set(key, p);
    }
    return p;
  }

  /** Last use is recorded at most once a minute to keep reads cheap. */
  private async lookup(key: string): Promise<ApiKeyRecord | undefined> {
    const rec = await findActiveApiKeyByHash(this.db, hashKey(key));
    if (!rec) return undefined;
    const now = this.now();
    if (!rec.lastUsedAt || now.getTime() - Date.parse(rec.lastUsedAt) > 60_000) await touchApiKey(this.db, rec.id, now.toISOString());
    return rec;
  }
}
