import { useEffect, useState, type FormEvent } from 'react';
import { ApiError, asApiError } from './api.ts';
import { rememberGuideServer } from './remember-guide-server.ts';
import { navigate } from './router.tsx';

export const toNumber = (s: string): number | null => (s.trim() === '' ? null : Number(s));
export const toNullable = (s: string): string | null => (s.trim() === '' ? null : s.trim());

type Notice = { kind: 'success' | 'info'; text: string };

/** What differs between the outgoing and the incoming mail server forms. */
export interface ServerFormSpec<S extends { id: string; name: string; redirectUri: string | null }, D extends { redirectUri: string }, V extends { clientSecret: string }, I extends { clientSecret?: string }> {
  /** "mail server", "incoming mail server": used in the messages. */
  noun: string;
  listPath: string;
  pathOf: (id: string) => string;
  loadDefaults: () => Promise<D>;
  load: (id: string) => Promise<S>;
  create: (input: I) => Promise<S>;
  update: (id: string, patch: Partial<I>) => Promise<S>;
  remove: (id: string) => Promise<unknown>;
  fromDefaults: (d: D) => V;
  fromServer: (s: S) => V;
  /** The API input for the form values, without the (write-only) client secret. */
  toInput: (v: V) => Omit<I, 'clientSecret'>;
  /** Whether a typed client secret is sent on create (default: always). */
  sendsSecret?: (v: V) => boolean;
  /** Problems to show without asking the server (empty number inputs would be read as 0 by the API). */
  check: (v: V) => Record<string, string>;
  /** Also run when a server is loaded or saved. */
  onServer?: (s: S) => void;
}

/** The fields of `after` whose API input differs from `before`'s, plus a typed client secret. */
function changedFields<V extends { clientSecret: string }, I>(toInput: (v: V) => Omit<I, 'clientSecret'>, before: V, after: V): Partial<I> {
  const a = toInput(before) as Record<string, unknown>;
  const b = toInput(after) as Record<string, unknown>;
  const patch: Record<string, unknown> = {};
  for (const k of Object.keys(b)) if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) patch[k] = b[k];
  if (after.clientSecret !== '') patch.clientSecret = after.clientSecret;
  return patch as Partial<I>;
}

/**
 * Loading, editing, saving and deleting a mail server (create when `id` is undefined): the state and
 * behaviour both server forms share. Field errors from the API land next to their fields; other
 * errors in an alert at the top.
 */
export function useServerForm<S extends { id: string; name: string; redirectUri: string | null }, D extends { redirectUri: string }, V extends { clientSecret: string }, I extends { clientSecret?: string }>(
  id: string | undefined,
  flash: string | null | undefined,
  spec: ServerFormSpec<S, D, V, I>,
) {
  const isNew = id === undefined;
  const [notice, setNotice] = useState<Notice | null>(() => (flash ? { kind: 'success', text: flash } : null));
  const [server, setServer] = useState<S | null>(null);
  const [redirectUri, setRedirectUri] = useState<string | null>('');
  const [initial, setInitial] = useState<V | null>(null);
  const [values, setValues] = useState<V | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [saving, setSaving] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const [validationMessage, setValidationMessage] = useState<string | null>(null);
  const [formError, setFormError] = useState<ApiError | null>(null);

  function applyServer(s: S) {
    const v = spec.fromServer(s);
    setServer(s);
    setRedirectUri(s.redirectUri);
    spec.onServer?.(s);
    setInitial(v);
    setValues(v);
  }

  useEffect(() => {
    let cancelled = false;
    const load = async () => {
      try {
        if (id === undefined) {
          const d = await spec.loadDefaults();
          if (cancelled) return;
          const v = spec.fromDefaults(d);
          setRedirectUri(d.redirectUri);
          setInitial(v);
          setValues(v);
        } else {
          const s = await spec.load(id);
          if (cancelled) return;
          applyServer(s);
          rememberGuideServer(s.id);
        }
      } catch (e) {
        if (!cancelled) setLoadError(asApiError(e));
      }
    };
    void load();
    return () => {
      cancelled = true;
    };
  }, [id]);

  /** Values that were saved outside the form (the Connection panel): follow them, keep other edits. */
  function keepSaved(saved: Partial<V>) {
    setInitial((v) => (v ? { ...v, ...saved } : v));
    setValues((v) => (v ? { ...v, ...saved } : v));
  }

  function set<K extends keyof V>(field: K, value: V[K]) {
    setValues((v) => (v ? { ...v, [field]: value } : v));
  }

  function clearMessages() {
    setFieldErrors({});
    setValidationMessage(null);
    setFormError(null);
    setNotice(null);
  }

  function showError(err: unknown) {
    const apiErr = asApiError(err);
    if (apiErr.hasFieldErrors) {
      setFieldErrors(apiErr.fields);
      setValidationMessage(apiErr.message);
    } else {
      setFormError(apiErr);
      window.scrollTo({ top: 0 });
    }
  }

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    if (!values || !initial) return;
    const local = spec.check(values);
    clearMessages();
    if (Object.keys(local).length > 0) {
      setFieldErrors(local);
      return;
    }
    setSaving(true);
    try {
      if (isNew) {
        const input = { ...spec.toInput(values) } as I;
        if (values.clientSecret !== '' && (spec.sendsSecret?.(values) ?? true)) input.clientSecret = values.clientSecret;
        const created = await spec.create(input);
        const label = spec.noun.charAt(0).toUpperCase() + spec.noun.slice(1);
        navigate(spec.pathOf(created.id), { state: { notice: `${label} created.` } });
        return;
      }
      if (!server) return;
      const patch = changedFields(spec.toInput, initial, values);
      if (Object.keys(patch).length === 0) {
        setNotice({ kind: 'info', text: 'No changes to save.' });
      } else {
        applyServer(await spec.update(server.id, patch));
        setNotice({ kind: 'success', text: 'Saved.' });
      }
    } catch (err) {
      showError(err);
    } finally {
      setSaving(false);
    }
  }

  async function remove() {
    if (!server) return;
    if (!window.confirm(`Delete the ${spec.noun} “${server.name}”? This cannot be undone.`)) return;
    setDeleting(true);
    setFormError(null);
    try {
      await spec.remove(server.id);
      const label = spec.noun.charAt(0).toUpperCase() + spec.noun.slice(1);
      navigate(spec.listPath, { state: { notice: `${label} “${server.name}” deleted.` } });
    } catch (err) {
      setFormError(asApiError(err));
      setDeleting(false);
    }
  }

  const dirty = values && initial ? Object.keys(changedFields(spec.toInput, initial, values)).length > 0 : false;

  return {
    isNew,
    server,
    setServer,
    redirectUri,
    initial,
    values,
    set,
    keepSaved,
    loadError,
    saving,
    deleting,
    fieldErrors,
    validationMessage,
    formError,
    notice,
    setNotice,
    clearMessages,
    showError,
    submit,
    remove,
    dirty,
  };
}
