import { type SendCommand, type SmtpReply, SmtpStepError } from './xoauth2.ts';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/**
 * AUTH PLAIN (RFC 4616, empty authorization identity) where the server offers it, else AUTH LOGIN
 * (Exchange on-premises and Microsoft 365 offer LOGIN only).
 */
export async function authPassword(send: SendCommand, offered: string[], user: string, password: string): Promise<{ mechanism: string; reply: SmtpReply }> {
  if (offered.includes('PLAIN') || !offered.includes('LOGIN')) {
    const r = await send(`AUTH PLAIN ${b64(`\x00${user}\x00${password}`)}`);
    if (r.status !== 235) throw new SmtpStepError('AUTH PLAIN', r);
    return { mechanism: 'PLAIN', reply: r };
  }
  let r = await send('AUTH LOGIN');
  if (r.status !== 334) throw new SmtpStepError('AUTH LOGIN', r);
  r = await send(b64(user));
  if (r.status !== 334) throw new SmtpStepError('AUTH LOGIN', r);
  r = await send(b64(password));
  if (r.status !== 235) throw new SmtpStepError('AUTH LOGIN', r);
  return { mechanism: 'LOGIN', reply: r };
}
