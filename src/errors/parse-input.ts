import { z } from 'zod';
import { validationError } from './errors.ts';

/** zod issues → one message per field, in the field's own words ("to.1", "headers.X-Ref", "body"). */
export function fieldErrors(issues: z.core.$ZodIssue[]): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys) fields[k] ??= `Unknown field "${k}"`;
      continue;
    }
    fields[issue.path.map(String).join('.') || 'body'] ??= issue.message;
  }
  return fields;
}

/** Validates input at the edge: the parsed value, or MR_VALIDATION naming every bad field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  if (input !== undefined && input !== null && (typeof input !== 'object' || Array.isArray(input))) {
    throw validationError({ body: 'Send a JSON object (Content-Type: application/json)' });
  }
  const r = schema.safeParse(input ?? {});
  if (r.success) return r.data;
  throw validationError(fieldErrors(r.error.issues));
}

/**
 * One query parameter given once: a repeated `?a=1&a=2` arrives as an array and is refused by name
 * instead of reaching code that expects text.
 */
export const queryText = (name: string, max = 200) =>
  z.string({ error: `Give ${name} once, as text` }).max(max, { error: `${name} is at most ${max} characters` });

/** Page size of a list: a whole number from 1 to 200 (1.5 or 0 is a 400, not a query error). */
export const pageLimit = z.coerce
  .number({ error: 'limit must be a whole number from 1 to 200' })
  .int({ error: 'limit must be a whole number from 1 to 200' })
  .min(1, { error: 'limit must be a whole number from 1 to 200' })
  .max(200, { error: 'limit must be a whole number from 1 to 200' })
  .default(50);
