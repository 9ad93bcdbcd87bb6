import { useEffect, useState } from 'react';
import type { AuthMethodChoice, AuthType } from './api.ts';

/**
 * The Authenticate Using options as the API lists them (the defaults endpoint of the form's kind of
 * server). The forms show what a method needs from this list, never from a provider's name.
 */
export function useAuthMethods(load: () => Promise<{ authMethods: AuthMethodChoice[] }>): AuthMethodChoice[] | null {
  const [methods, setMethods] = useState<AuthMethodChoice[] | null>(null);
  useEffect(() => {
    let cancelled = false;
    load().then(
      (d) => !cancelled && setMethods(d.authMethods),
      () => !cancelled && setMethods([]),
    );
    return () => {
      cancelled = true;
    };
  }, []);
  return methods;
}

export function methodOf(methods: AuthMethodChoice[] | null, authType: string): AuthMethodChoice | undefined {
  return methods?.find((m) => m.authType === authType);
}

/** "How to connect Gmail" */
export const guideLabel = (oauth: NonNullable<AuthMethodChoice['oauth']>) => `How to connect ${oauth.accountName}`;

export type { AuthType };
