import { z } from 'zod';
import { isMailroomError } from '../errors/errors.ts';

/** Ids one bulk request may name: a page of the list (the UI sends a larger selection in pieces of this size). */
export const BULK_MAX_IDS = 200;
/**
 * Servers worked on at once: a test opens a real connection (and waits for a slot of the mailbox's
 * connection gate, like the outbox), so a selection of 200 is not 200 logins at the same instant.
 */
export const BULK_CONCURRENCY = 8;

export const BULK_ACTIONS = ['test', 'disconnect', 'delete'] as const;
export type BulkAction = (typeof BULK_ACTIONS)[number];

const idsMessage = `ids is a list of 1 to ${BULK_MAX_IDS} server ids`;
export const bulkServersSchema = z.strictObject({
  action: z.enum(BULK_ACTIONS, { error: `action is ${BULK_ACTIONS.slice(0, -1).join(', ')} or ${BULK_ACTIONS.at(-1)}` }),
  ids: z
    .array(z.string({ error: 'A server id is text' }).regex(/^[A-Za-z0-9_-]{1,100}$/, { error: 'Not a server id: pass the id field of a listed server' }), { error: idsMessage })
    .min(1, { error: 'Name at least one server in ids' })
    .max(BULK_MAX_IDS, { error: `At most ${BULK_MAX_IDS} servers at once: send the rest in another request` }),
});

/** One server's outcome: `code` is null when it worked. */
export interface BulkResult {
  id: string;
  ok: boolean;
  code: string | null;
  message: string;
  fix?: string;
  /** disconnect and delete: whether the grant was revoked at the provider, and why not. */
  grantRevoked?: boolean;
  note?: string | null;
}

export type BulkOutcome = Omit<BulkResult, 'id'>;

/**
 * Runs `each` for every id (duplicates once), at most `concurrency` at a time, and answers in the
 * order asked. A Mailroom error of one server (not found, a refused test) is that server's result;
 * anything else is MR_INTERNAL for that server, reported through `onUnexpected`, and the others go on.
 */
export async function runBulk(
  ids: readonly string[],
  each: (id: string) => Promise<BulkOutcome>,
  opts: { concurrency?: number; onUnexpected?: (id: string, e: unknown) => void } = {},
): Promise<BulkResult[]> {
  const unique = [...new Set(ids)];
  const results = new Array<BulkResult>(unique.length);
  let next = 0;
  async function worker() {
    while (next < unique.length) {
      const i = next++;
      const id = unique[i]!;
      try {
        results[i] = { id, ...(await each(id)) };
      } catch (e) {
        if (isMailroomError(e)) {
          results[i] = { id, ok: false, code: e.code, message: e.message, ...(e.fix !== undefined && { fix: e.fix }) };
        } else {
          opts.onUnexpected?.(id, e);
          results[i] = { id, ok: false, code: 'MR_INTERNAL', message: 'Mailroom failed on this server unexpectedly.', fix: 'Try again; if it repeats, report it with the log line bulk.failed (it has the stack).' };
        }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? BULK_CONCURRENCY, unique.length) }, worker));
  return results;
}
