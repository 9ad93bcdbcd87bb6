import type { AuthMethod } from './auth-method.ts';

/** No SMTP AUTH: a relay that accepts mail from this machine's address (Postfix mynetworks, an SMTP relay service). */
export const noAuthMethod: AuthMethod = {
  authType: 'none',
  label: 'None',
  mechanism: 'none',
  incoming: false,
  graph: false,
  async login() {
    return { kind: 'none' };
  },
};
