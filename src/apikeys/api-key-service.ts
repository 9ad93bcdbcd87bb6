import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { MailroomError } from '../errors/errors.ts';
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

export type { ApiKeyRecord, ApiKeyScope };

export const createApiKeySchema = z.strictObject({
  name: z.string({ error: 'Give the key a name, e.g. "ERP production"' }).trim().min(1, { error: 'Give the key a name, e.g. "ERP production"' }).max(100, { error: 'At most 100 characters' }),
  scope: z.enum(['send', 'read', 'admin'], { error: 'Scope must be send, read or admin' }),
});

/** What each scope may do. A session admin may do everything. */
export function scopeAllows(scope: ApiKeyScope, need: ApiKeyScope): boolean {
  if (scope === 'admin') return true;
  if (need === 'read') return scope === 'read' || scope === 'send';
  return scope === need;
}

const hashKey = (key: string) => createHash('sha256').update(key).digest('base64url');

export class ApiKeyService {
  constructor(private readonly db: Db, private readonly now: () => Date = () => new Date()) {}

  /** The key is returned once and only its SHA-256 is stored (keys are 256-bit random: no slow hash needed). */
  async create(body: unknown, createdBy: string | null): Promise<ApiKeyRecord & { key: string }> {
    const { name, scope } = parseInput(createApiKeySchema, body);
    const id = randomUUID();
    const key = `mr_${randomBytes(32).toString('base64url')}`;
    const rec = await insertApiKey(this.db, { id, name, scope, prefix: key.slice(0, 10), createdBy, createdAt: this.now().toISOString(), keyHash: hashKey(key) });
    return { ...rec, key };
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
