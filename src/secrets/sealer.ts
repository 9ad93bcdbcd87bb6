import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { privateDir } from '../storage/private-files.ts';
import { join } from 'node:path';
import { MailroomError } from '../errors/errors.ts';

/**
 * AES-256-GCM sealing of client secrets and tokens at rest.
 * Format: `v1:<keyId>:<iv>:<tag>:<ciphertext>` (base64url parts). The key id is a short hash of the
 * key, so a value sealed under another key is reported as such instead of failing as "tampered".
 * `aad` binds a sealed value to its place (e.g. "mail_server:<id>:refresh_token"): a ciphertext
 * copied into another row does not open.
 */
export interface Sealer {
  seal(plaintext: string, aad: string): string;
  open(sealed: string, aad: string): string;
}

export function keyIdOf(key: Buffer): string {
  return createHash('sha256').update(key).digest('base64url').slice(0, 8);
}

export function createSealer(key: Buffer): Sealer {
  if (key.length !== 32) throw new Error('secret key must be 32 bytes');
  const keyId = keyIdOf(key);
  return {
    seal(plaintext, aad) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(aad, 'utf8'));
      const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      const tag = cipher.getAuthTag();
      return ['v1', keyId, iv.toString('base64url'), tag.toString('base64url'), ct.toString('base64url')].join(':');
    },
    open(sealed, aad) {
      const parts = sealed.split(':');
      if (parts.length !== 5 || parts[0] !== 'v1') {
        throw new MailroomError('MR_SECRET_TAMPERED', 'A stored secret is not in the sealed format; it was altered or written by something else.');
      }
      const [, kid, iv, tag, ct] = parts as [string, string, string, string, string];
      if (kid !== keyId) {
        throw new MailroomError(
          'MR_SECRET_KEY_UNKNOWN',
          `A stored secret was sealed with another key (key id ${kid}, current ${keyId}).`,
          { fix: 'Start Mailroom with the MAILROOM_SECRET_KEY (or DATA_DIR/secret.key) it was using when the secret was saved, or enter the client secret again and reconnect.' },
        );
      }
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
        decipher.setAAD(Buffer.from(aad, 'utf8'));
        decipher.setAuthTag(Buffer.from(tag, 'base64url'));
        return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
      } catch (cause) {
        throw new MailroomError('MR_SECRET_TAMPERED', 'A stored secret failed its integrity check: the database value was altered.', { cause });
      }
    },
  };
}

/** The configured key, or the key file in DATA_DIR, created (mode 0600) at first start. */
export function loadOrCreateKey(configured: Buffer | null, dataDir: string): Buffer {
  if (configured) return configured;
  const file = join(dataDir, 'secret.key');
  if (existsSync(file)) {
    const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
    if (key.length !== 32) throw new Error(`${file} does not hold a base64 32-byte key`);
    return key;
  }
  privateDir(dataDir);
  const key = randomBytes(32);
  writeFileSync(file, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return key;
}

const CHECK_AAD = 'cluster:secret_key_check';
const CHECK_TEXT = 'mailroom secret key check';

/** The value sealed at first start, stored once for the installation. */
export const sealKeyCheck = (sealer: Sealer): string => sealer.seal(CHECK_TEXT, CHECK_AAD);

/**
 * Refuses a key that cannot open the installation's check value: caught at start, instead of as a
 * failure on every server later (and before this instance seals anything the others cannot open).
 */
export function verifyKeyCheck(sealer: Sealer, stored: string, key: Buffer): void {
  let opened: string | undefined;
  try {
    opened = sealer.open(stored, CHECK_AAD);
  } catch {
    opened = undefined;
  }
  if (opened !== CHECK_TEXT) {
    throw new MailroomError(
      'MR_SECRET_KEY_MISMATCH',
      `This instance's secret key (key id ${keyIdOf(key)}) cannot open the secrets stored in the database, which were sealed with key id ${stored.split(':')[1] ?? '?'}: Mailroom refuses to start.`,
      { fix: 'Start every instance with the same MAILROOM_SECRET_KEY (or, on SQLite, the DATA_DIR/secret.key) the database was first used with.' },
    );
  }
}
