import { useState, type FormEvent } from 'react';
import { type ApiError, asApiError } from './api.ts';

/**
 * The "create" form of a list whose new entries come with a secret shown once (API keys, webhooks):
 * the required field checked here, API field errors next to their fields (the first one focused),
 * other errors in an alert, the created entry kept for the shown-once panel.
 */
export function useSecretCreate<C extends { id: string }>(spec: {
  /** Labels of the fields this form shows: an error about another field stays a general error. */
  labels: Record<string, string>;
  fieldId: (f: string) => string;
  /** The field that must not be empty, with the message shown when it is. */
  required: { field: string; value: string; message: string };
  /** Clears what the page shows about earlier actions (notices, row errors). */
  onStart: () => void;
  send: () => Promise<C>;
  /** The entry was created: empty the form, show it in the list. */
  onCreated: (created: C) => void;
}) {
  const [creating, setCreating] = useState(false);
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<ApiError | null>(null);
  const [created, setCreated] = useState<C | null>(null);
  const focus = (f: string) => document.getElementById(spec.fieldId(f))?.focus();

  async function create(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const { field, value, message } = spec.required;
    if (value.trim() === '') {
      setFieldErrors({ [field]: message });
      setFormError(null);
      focus(field);
      return;
    }
    setCreating(true);
    setFieldErrors({});
    setFormError(null);
    spec.onStart();
    try {
      const c = await spec.send();
      setCreated(c);
      spec.onCreated(c);
    } catch (err) {
      const apiErr = asApiError(err);
      const known = Object.keys(apiErr.fields).filter((f) => f in spec.labels);
      if (known.length > 0) {
        setFieldErrors(apiErr.fields);
        focus(known[0]!);
        // A message about a field this form does not show stays a general error.
        if (Object.keys(apiErr.fields).some((f) => !(f in spec.labels))) setFormError(apiErr);
      } else setFormError(apiErr);
    } finally {
      setCreating(false);
    }
  }

  return { creating, fieldErrors, formError, created, setCreated, create };
}
