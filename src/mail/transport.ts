/**
 * The mail transport port: hands one rendered mail to the outside world.
 *
 * Adapters: SMTP through nodemailer (`smtp_transport.ts`) and an outbox folder of `.eml`
 * files (`outbox_transport.ts`), picked by `src/app/adapters.ts` from the configuration.
 */

/** A mailbox: an address and the name shown with it. */
export interface MailAddress {
  /**
   * The display name, as it is: any character (quotes, commas, angle brackets, a final
   * backslash) is the adapter's to encode, so a name never adds or hides a recipient.
   */
  name?: string;
  address: string;
}

/** A rendered mail, ready to send. */
export interface OutgoingMail {
  /** Stable across retries, so that a receiving system can drop a duplicate. */
  messageId: string;
  from: string;
  /** The one recipient, given apart from its name: never a string built by hand. */
  to: MailAddress;
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
