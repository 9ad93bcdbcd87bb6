import { MailroomError } from '../errors/errors.ts';
import { type AuthMethod, passwordAad } from './auth-method.ts';

/** SMTP AUTH PLAIN/LOGIN and IMAP LOGIN with the Username and the sealed Password. */
export const passwordAuthMethod: AuthMethod = {
  authType: 'password',
  label: 'Username/Password',
  mechanism: 'password',
  incoming: true,
  graph: false,
  async login(server, deps) {
    if (!server.passwordSealed) {
      throw new MailroomError('MR_CREDENTIALS_MISSING', 'This mail server has no password.', { field: 'password', fix: 'Enter the mailbox password in Password and save.' });
    }
    return { kind: 'password', user: server.username, password: deps.sealer.open(server.passwordSealed, passwordAad(server.id)) };
  },
};
