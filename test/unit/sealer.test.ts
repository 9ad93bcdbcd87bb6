import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { isMailroomError } from '../../src/errors/errors.ts';
import { createSealer, loadOrCreateKey } from '../../src/secrets/sealer.ts';

const key = randomBytes(32);

test('round trip returns the plaintext and the sealed form does not contain it', () => {
  const s = createSealer(key);
  const sealed = s.seal('my-refresh-token', 'mail_server:1:refresh_token');
  assert.match(sealed, /^v1:[\w-]{8}:[\w-]+:[\w-]+:[\w-]+$/);
  assert.ok(!sealed.includes('my-refresh-token'));
  assert.equal(s.open(sealed, 'mail_server:1:refresh_token'), 'my-refresh-token');
  assert.notEqual(s.seal('x', 'a'), s.seal('x', 'a'), 'a fresh IV every time');
});

test('tampered ciphertext, tag or IV is an error, not garbage', () => {
  const s = createSealer(key);
  const sealed = s.seal('secret value', 'aad');
  const parts = sealed.split(':');
  for (const i of [2, 3, 4]) {
    const p = [...parts];
    const b = Buffer.from(p[i]!, 'base64url');
    b[0] = b[0]! ^ 1;
    p[i] = b.toString('base64url');
    assert.throws(() => s.open(p.join(':'), 'aad'), (e) => isMailroomError(e, 'MR_SECRET_TAMPERED'));
  }
  assert.throws(() => s.open('plaintext', 'aad'), (e) => isMailroomError(e, 'MR_SECRET_TAMPERED'));
});

test('a value moved to another row (other AAD) does not open', () => {
  const s = createSealer(key);
  const sealed = s.seal('token', 'mail_server:A:access_token');
  assert.throws(() => s.open(sealed, 'mail_server:B:access_token'), (e) => isMailroomError(e, 'MR_SECRET_TAMPERED'));
});

test('a wrong key is reported as a key problem with a fix', () => {
  const sealed = createSealer(key).seal('token', 'aad');
  assert.throws(
    () => createSealer(randomBytes(32)).open(sealed, 'aad'),
    (e) => isMailroomError(e, 'MR_SECRET_KEY_UNKNOWN') && /MAILROOM_SECRET_KEY/.test(e.fix ?? ''),
  );
});

test('the key file is created once with mode 0600 and reused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailroom-key-'));
  try {
    const k1 = loadOrCreateKey(null, dir);
    const file = join(dir, 'secret.key');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(Buffer.from(readFileSync(file, 'utf8').trim(), 'base64').length, 32);
    assert.deepEqual(loadOrCreateKey(null, dir), k1);
    assert.deepEqual(loadOrCreateKey(key, dir), key, 'a configured key wins');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
