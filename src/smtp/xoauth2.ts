/** SASL XOAUTH2 initial response (Microsoft and Google's format). */
export function xoauth2String(user: string, accessToken: string): string {
  return Buffer.from(`user=${user}\x01auth=Bearer ${accessToken}\x01\x01`, 'utf8').toString('base64');
}

export interface SmtpReply {
  status: number;
  code?: string;
  response: string;
}

export type SendCommand = (cmd: string) => Promise<SmtpReply>;

export class SmtpStepError extends Error {
  constructor(readonly command: string, readonly reply: SmtpReply) {
    super(reply.response);
  }
}

/**
 * AUTH XOAUTH2 in two steps: `AUTH XOAUTH2` → `334` → the base64 string (RFC 4954 §4).
 * Microsoft documents this form, and Dovecot 2.3's submission-login refuses an inline AUTH line over
 * 1030 bytes while real tokens run to 1,500–2,500 characters (nodemailer's built-in XOAUTH2 is inline).
 * A failed token gets a 334 challenge carrying a base64 JSON error; an empty line ends the exchange.
 */
export async function authXoauth2TwoStep(send: SendCommand, user: string, accessToken: string): Promise<SmtpReply> {
  let r = await send('AUTH XOAUTH2');
  if (r.status !== 334) throw new SmtpStepError('AUTH XOAUTH2', r);
  r = await send(xoauth2String(user, accessToken));
  if (r.status === 334) {
    const challenge = r.response.replace(/^334\s*/, '');
    r = await send('');
    r = { ...r, response: `${r.response}${challenge ? ` (server said: ${decodeChallenge(challenge)})` : ''}` };
  }
  if (r.status !== 235) throw new SmtpStepError('AUTH XOAUTH2', r);
  return r;
}

function decodeChallenge(b64: string): string {
  try {
    return Buffer.from(b64, 'base64').toString('utf8');
  } catch {
    return b64;
  }
}
