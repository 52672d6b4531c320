/**
 * The mail transport port: hands one rendered mail to the outside world.
 *
 * Adapters: SMTP through nodemailer (`smtp_transport.ts`) and an outbox folder of `.eml`
 * files (`outbox_transport.ts`), picked by `mail_transports.ts` from the configuration.
 */

/** A rendered mail, ready to send. */
export interface OutgoingMail {
  /** Stable across retries, so that a receiving system can drop a duplicate. */
  messageId: string;
  from: string;
  to: string;
  subject: string;
  text: string;
  html: string;
  headers: Record<string, string>;
}

/** Sends mail. */
export interface MailTransport {
  /** Which adapter this is (`smtp`, `outbox`), for the debug endpoint. */
  readonly kind: string;
  send(mail: OutgoingMail): Promise<void>;
  close(): void;
}

/**
 * A send that failed. `permanent` failures (the server refused this mail for good, e.g.
 * an unknown recipient) are not retried; the others are.
 */
export class MailSendError extends Error {
  readonly permanent: boolean;

  constructor(message: string, options: { permanent: boolean; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.name = "MailSendError";
    this.permanent = options.permanent;
  }
}
