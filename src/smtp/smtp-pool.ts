import nodemailer, { type Transporter } from 'nodemailer';
import type SMTPPool from 'nodemailer/lib/smtp-pool';
import type { AccessToken } from '../oauth/token-manager.ts';
import { type OutgoingMessage, type RawOutgoingMessage, type SendResult, SmtpError, smtpErrorFrom, type SmtpTarget, toResult, transportOptions } from './smtp-client.ts';

/**
 * Carries a token-manager error through nodemailer, which rewrites the `code` of errors raised in an
 * auth handler to EAUTH.
 */
class TokenUnavailable extends Error {
  constructor(readonly inner: unknown) {
    super('no usable access token');
  }
}

/**
 * Pooled SMTP connections to one mail server. Each new connection logs in with a token fetched at that
 * moment; a 535 on a token believed valid forces one refresh and one retry of the message.
 */
export class PooledSender {
  private readonly transport: Transporter;
  private forceRefresh = false;

  constructor(
    readonly target: SmtpTarget,
    user: string,
    getToken: (forceRefresh: boolean) => Promise<AccessToken>,
    poolSize: number,
  ) {
    const options = transportOptions(target, user, async () => {
      const force = this.forceRefresh;
      this.forceRefresh = false;
      try {
        const t = await getToken(force);
        return { user: t.user, accessToken: t.accessToken };
      } catch (e) {
        throw new TokenUnavailable(e);
      }
    });
    this.transport = nodemailer.createTransport({
      ...options,
      pool: true,
      maxConnections: poolSize,
      // Exchange Online ends a session after a few dozen messages anyway; reconnect before that.
      maxMessages: 30,
    } as SMTPPool.Options);
  }

  async send(msg: OutgoingMessage | RawOutgoingMessage): Promise<SendResult> {
    try {
      return await this.sendOnce(msg);
    } catch (e) {
      if (!(e instanceof SmtpError && e.isAuthFailure)) throw e;
      this.forceRefresh = true;
      return this.sendOnce(msg);
    }
  }

  private async sendOnce(msg: OutgoingMessage | RawOutgoingMessage): Promise<SendResult> {
    try {
      return toResult((await this.transport.sendMail(msg)) as Parameters<typeof toResult>[0]);
    } catch (e) {
      if (e instanceof TokenUnavailable) throw e.inner;
      throw smtpErrorFrom(e, this.target);
    }
  }

  close(): void {
    this.transport.close();
  }
}
