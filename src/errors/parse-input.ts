import type { z } from 'zod';
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
