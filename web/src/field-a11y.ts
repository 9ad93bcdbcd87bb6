/**
 * The attributes that tie a form control to its FormField: id, name, aria-invalid and aria-describedby
 * (`also`, then the help text, then the error message).
 */
export function fieldA11y(id: string, name: string, hasHelp: boolean, hasError: boolean, also: string | null = null) {
  const describedBy = [also, hasHelp ? `${id}-help` : null, hasError ? `${id}-error` : null].filter(Boolean).join(' ');
  return {
    id,
    name,
    'aria-invalid': hasError ? true : undefined,
    'aria-describedby': describedBy || undefined,
  };
}
