import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { MailroomError, validationError } from '../errors/errors.ts';
import {
  consumeSetupToken,
  countAdmins,
  deleteExpiredSessions,
  deleteSession,
  extendSession,
  findAdminByEmail,
  findLiveSession,
  insertAdmin,
  insertSession,
  insertSetupToken,
  type SessionRow,
  updateAdminPassword,
} from '../storage/admin-store.ts';
import type { Db } from '../storage/database.ts';
import { hashPassword, passwordProblem, verifyPassword } from './password.ts';

export const SESSION_TTL_MS = 12 * 3600_000;
const SETUP_TOKEN_TTL_MS = 24 * 3600_000;
// Dots separate the domain's labels exactly once each, so the match is linear in the input.
const EMAIL_RE = /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/;

export const sha256 = (s: string) => createHash('sha256').update(s).digest('base64url');

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

// A fixed hash to verify against when the account does not exist, so response time does not reveal
// which emails are admins.
let dummyHash: Promise<string> | undefined;

export class AdminService {
  constructor(private readonly db: Db, private readonly now: () => Date = () => new Date()) {}

  async hasAdmin(): Promise<boolean> {
    return (await countAdmins(this.db)) > 0;
  }

  async createAdmin(email: string, password: string): Promise<{ id: string; email: string }> {
    const e = normalizeEmail(email);
    const problems: Record<string, string> = {};
    if (e.length > 320 || !EMAIL_RE.test(e)) problems.email = 'Enter a valid email address, e.g. admin@example.com';
    const pw = passwordProblem(password);
    if (pw) problems.password = pw;
    if (Object.keys(problems).length) throw validationError(problems);
    if (await findAdminByEmail(this.db, e)) {
      throw new MailroomError('MR_CONFLICT', `An admin with the email ${e} already exists.`, { field: 'email' });
    }
    const id = randomUUID();
    await insertAdmin(this.db, { id, email: e, passwordHash: await hashPassword(password) }, this.now());
    return { id, email: e };
  }

  async setPassword(email: string, password: string): Promise<void> {
    const admin = await findAdminByEmail(this.db, normalizeEmail(email));
    if (!admin) throw new MailroomError('MR_NOT_FOUND', `No admin with the email ${email}.`, { field: 'email' });
    const pw = passwordProblem(password);
    if (pw) throw validationError({ password: pw });
    await updateAdminPassword(this.db, admin.id, await hashPassword(password));
  }

  /** Returns the admin on success, null on a wrong email or password (indistinguishable to callers). */
  async checkCredentials(email: string, password: string): Promise<{ id: string; email: string } | null> {
    const admin = await findAdminByEmail(this.db, normalizeEmail(email));
    if (!admin) {
      dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
      await verifyPassword(password, await dummyHash);
      return null;
    }
    return (await verifyPassword(password, admin.passwordHash)) ? { id: admin.id, email: admin.email } : null;
  }

  /** Creates a session; the raw id goes to the cookie, only its hash is stored. */
  async startSession(adminId: string): Promise<{ sessionId: string; csrfToken: string }> {
    const sessionId = randomBytes(32).toString('base64url');
    const csrfToken = randomBytes(32).toString('base64url');
    const now = this.now();
    await insertSession(this.db, { idHash: sha256(sessionId), adminId, csrfToken, expiresAt: new Date(now.getTime() + SESSION_TTL_MS) }, now);
    return { sessionId, csrfToken };
  }

  /** Sliding expiry: an active session is extended once less than half its lifetime remains. */
  async resolveSession(sessionId: string): Promise<SessionRow | undefined> {
    const now = this.now();
    const idHash = sha256(sessionId);
    const s = await findLiveSession(this.db, idHash, now);
    if (s && Date.parse(s.expiresAt) - now.getTime() < SESSION_TTL_MS / 2) {
      await extendSession(this.db, idHash, new Date(now.getTime() + SESSION_TTL_MS));
    }
    return s;
  }

  async endSession(sessionId: string): Promise<void> {
    await deleteSession(this.db, sha256(sessionId));
  }

  async sweep(): Promise<void> {
    await deleteExpiredSessions(this.db, this.now());
  }

  async issueSetupToken(): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    const now = this.now();
    await insertSetupToken(this.db, sha256(token), new Date(now.getTime() + SETUP_TOKEN_TTL_MS), now);
    return token;
  }

  /** First-run setup: valid only while no admin exists, and each link works once. */
  async completeSetup(token: string, email: string, password: string): Promise<{ id: string; email: string }> {
    if (await this.hasAdmin()) {
      throw new MailroomError('MR_SETUP_DONE', 'Setup is already complete.', { fix: 'Log in, or ask an admin to create your account with: npx mailroom admin create --email E --password P' });
    }
    const problems: Record<string, string> = {};
    if (!EMAIL_RE.test(normalizeEmail(email))) problems.email = 'Enter a valid email address, e.g. admin@example.com';
    const pw = passwordProblem(password);
    if (pw) problems.password = pw;
    if (Object.keys(problems).length) throw validationError(problems);
    if (!(await consumeSetupToken(this.db, sha256(token), this.now()))) {
      throw new MailroomError('MR_SETUP_TOKEN_INVALID', 'This setup link is invalid, expired or already used.', {
        field: 'token',
        fix: 'Restart Mailroom to print a new setup link, or run: npx mailroom admin create --email E --password P',
      });
    }
    return this.createAdmin(email, password);
  }
}
