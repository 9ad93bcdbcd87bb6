import assert from 'node:assert/strict';
import { isMailroomError, type MailroomError } from '../../src/errors/errors.ts';
import { validateMessage } from '../../src/outbox/message-input.ts';

/** The per-field messages validateMessage refuses `body` with; fails the test if it accepts it. */
export function invalidFields(body: unknown, maxBytes: number): Record<string, string> {
  try {
    validateMessage(body, maxBytes);
  } catch (e) {
    assert.ok(isMailroomError(e, 'MR_VALIDATION'));
    return (e as MailroomError).fields ?? {};
  }
  assert.fail('expected a validation error');
}
