import { z } from 'zod';
import { MailroomError } from '../errors/errors.ts';
import { pageLimit, parseInput, queryText } from '../errors/parse-input.ts';
import { SERVER_STATES, type OwnerQuery, type ServerQuery, type ServerState } from '../storage/mail-server-store.ts';

/** Without `limit` a list answers every server up to this many (the lists were unpaged before). */
export const SERVER_PAGE_MAX = 1000;

const listSchema = z.object({
  owner: queryText('owner').optional(),
  /** `shared=true`: only servers without an owner. */
  shared: z.enum(['true', 'false'], { error: 'shared must be true or false' }).optional(),
  state: z.enum(SERVER_STATES as [ServerState, ...ServerState[]], { error: `state must be one of ${SERVER_STATES.join(', ')}` }).optional(),
  q: queryText('q').optional(),
  limit: z.coerce
    .number({ error: `limit must be a whole number from 1 to ${SERVER_PAGE_MAX}` })
    .int({ error: `limit must be a whole number from 1 to ${SERVER_PAGE_MAX}` })
    .min(1, { error: `limit must be a whole number from 1 to ${SERVER_PAGE_MAX}` })
    .max(SERVER_PAGE_MAX, { error: `limit must be a whole number from 1 to ${SERVER_PAGE_MAX}` })
    .optional(),
  cursor: queryText('cursor', 2000).optional(),
});

export const encodeServerCursor = (s: { priority: number; name: string; id: string }) => Buffer.from(JSON.stringify([s.priority, s.name, s.id])).toString('base64url');

function decodeCursor(c: string): ServerQuery['cursor'] {
  try {
    const [priority, name, id] = JSON.parse(Buffer.from(c, 'base64url').toString('utf8')) as unknown[];
    if (typeof priority === 'number' && typeof name === 'string' && typeof id === 'string') return { priority, name, id };
  } catch {
    // falls through to the refusal
  }
  throw new MailroomError('MR_VALIDATION', 'The cursor is not one this API returned.', { field: 'cursor', fields: { cursor: 'Pass nextCursor from the previous page as it was' } });
}

/** `?owner=&shared=&state=&q=&limit=&cursor=` of the server lists, checked. */
export function parseServerListQuery(query: unknown, direction: ServerQuery['direction']): ServerQuery {
  const q = parseInput(listSchema, query ?? {});
  if (q.owner !== undefined && q.shared === 'true') throw new MailroomError('MR_VALIDATION', 'Give owner or shared=true, not both.', { field: 'shared', fields: { shared: 'A shared server has no owner: leave owner out' } });
  return {
    direction,
    ...(q.owner !== undefined && { owner: q.owner }),
    ...(q.shared === 'true' && { owner: null }),
    ...(q.state && { state: q.state }),
    ...(q.q && { q: q.q }),
    limit: q.limit ?? SERVER_PAGE_MAX,
    ...(q.cursor && { cursor: decodeCursor(q.cursor) }),
  };
}

const ownerListSchema = z.strictObject({
  direction: z.enum(['outgoing', 'incoming'], { error: 'direction must be outgoing or incoming' }).optional(),
  q: queryText('q').optional(),
  limit: pageLimit,
  cursor: queryText('cursor', 2000).optional(),
});

export const encodeOwnerCursor = (owner: string) => Buffer.from(owner, 'utf8').toString('base64url');

/** `?direction=&q=&limit=&cursor=` of the owner list, checked. */
export function parseOwnerQuery(query: unknown): OwnerQuery {
  const q = parseInput(ownerListSchema, query ?? {});
  let after: string | undefined;
  if (q.cursor !== undefined) {
    after = Buffer.from(q.cursor, 'base64url').toString('utf8');
    if (!after || encodeOwnerCursor(after) !== q.cursor) throw new MailroomError('MR_VALIDATION', 'The cursor is not one this API returned.', { field: 'cursor', fields: { cursor: 'Pass nextCursor from the previous page as it was' } });
  }
  return { ...(q.direction && { direction: q.direction }), ...(q.q && { q: q.q }), limit: q.limit, ...(after !== undefined && { after }) };
}
