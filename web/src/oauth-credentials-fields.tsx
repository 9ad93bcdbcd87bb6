import type { ReactNode } from 'react';
import type { AuthMethodChoice } from './api.ts';
import { CopyButton } from './copy-button.tsx';
import { fieldA11y } from './field-a11y.ts';
import { FormField } from './form-field.tsx';
import { RedirectCheck, RedirectCompare } from './redirect-check.tsx';

type CredentialField = 'clientId' | 'clientSecret' | 'tenant';

const LABELS: Record<CredentialField | 'redirectUri', string> = {
  redirectUri: 'OAuth2 Redirect Url',
  clientId: 'Client ID',
  clientSecret: 'Client Secret',
  tenant: 'Tenant',
};

const TENANT_HELP = 'common, organizations, consumers, a tenant ID or a domain';

const SECRET_SET_PLACEHOLDER = '•••••••• (set — leave empty to keep)';

interface OAuthCredentialsFieldsProps {
  /** Prefix of the element ids, e.g. "mail-server-" gives "mail-server-clientId". */
  idPrefix: string;
  /** The provider as the API describes it: redirect URL, help texts, whether it has tenants. */
  oauth: NonNullable<AuthMethodChoice['oauth']>;
  values: Record<CredentialField, string>;
  onChange: (field: CredentialField, value: string) => void;
  errors: Record<string, string>;
  /** A client secret is saved (the empty field keeps it). */
  secretSet: boolean;
  /** Client Secret is asked for (not with a certificate credential). */
  withSecret?: boolean;
  /** Tenant's help when the default does not fit (application access needs a specific tenant). */
  tenantHelp?: string;
  /** Shown between Client Secret and Tenant. */
  afterSecret?: ReactNode;
}

/** The OAuth client's fields: OAuth2 Redirect Url (with Copy), Client ID, Client Secret and, for providers with tenants, Tenant. */
export function OAuthCredentialsFields({
  idPrefix,
  oauth,
  values,
  onChange,
  errors,
  secretSet,
  withSecret = true,
  tenantHelp,
  afterSecret,
}: OAuthCredentialsFieldsProps) {
  const fieldId = (f: string) => `${idPrefix}${f}`;
  const redirectUri = oauth.redirectUri;
  const HELP: Record<CredentialField | 'redirectUri', string> = { ...oauth.help, tenant: tenantHelp ?? TENANT_HELP };

  function text(f: CredentialField, props: { type?: string; placeholder?: string; autoComplete?: string } = {}) {
    return (
      <FormField id={fieldId(f)} label={LABELS[f]} help={HELP[f]} error={errors[f]}>
        <input
          className="input-wide"
          {...fieldA11y(fieldId(f), f, true, !!errors[f])}
          type={props.type ?? 'text'}
          value={values[f]}
          onChange={(e) => onChange(f, e.target.value)}
          placeholder={props.placeholder}
          autoComplete={props.autoComplete ?? 'off'}
          spellCheck={false}
        />
      </FormField>
    );
  }

  return (
    <>
      <RedirectCheck redirectUri={redirectUri} />
      <FormField id={fieldId('redirectUri')} label={LABELS.redirectUri} help={HELP.redirectUri} after={<RedirectCompare idPrefix={idPrefix} redirectUri={redirectUri} />}>
        <div className="input-with-button">
          <input
            className="input-wide"
            id={fieldId('redirectUri')}
            type="text"
            readOnly
            value={redirectUri}
            aria-describedby={`${fieldId('redirectUri')}-help`}
            onFocus={(e) => e.currentTarget.select()}
          />
          <CopyButton text={redirectUri} inputId={fieldId('redirectUri')} />
        </div>
      </FormField>
      {text('clientId', { placeholder: oauth.help.clientIdPlaceholder })}
      {withSecret &&
        text('clientSecret', {
          type: 'password',
          autoComplete: 'new-password',
          placeholder: secretSet ? SECRET_SET_PLACEHOLDER : undefined,
        })}
      {withSecret && afterSecret}
      {oauth.tenant && text('tenant')}
    </>
  );
}
