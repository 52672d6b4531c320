/**
 * The SMTP adapter of the mail transport, with nodemailer: one connection per mail, so
 * that a relay that went away and came back is simply reached again.
 */

import { createTransport, toNodemailer } from "./_nodemailer.ts";
import { MailSendError, type MailTransport } from "./transport.ts";

/** Options of {@linkcode createSmtpTransport}. */
export interface SmtpTransportOptions {
  /** Connection and greeting timeout; a dead relay fails fast instead of hanging. */
  timeoutMs?: number;
}

/** Sends through the relay at `url` (`smtp://user:pass@host:port` or `smtps://`). */
export function createSmtpTransport(
  url: string,
  options: SmtpTransportOptions = {},
): MailTransport {
  const timeout = options.timeoutMs ?? 15_000;
  const parsed = new URL(url);
  const transport = createTransport({
    host: parsed.hostname,
    port: parsed.port ? Number(parsed.port) : parsed.protocol === "smtps:" ? 465 : 25,
    secure: parsed.protocol === "smtps:",
    ...(parsed.username
      ? {
        auth: {
          user: decodeURIComponent(parsed.username),
          pass: decodeURIComponent(parsed.password),
        },
      }
      : {}),
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout * 2,
  });
  return {
    kind: "smtp",
    async send(mail) {
      try {
        await transport.sendMail(toNodemailer(mail));
      } catch (e) {
        const { responseCode: code, command } = e as { responseCode?: number; command?: string };
        // 5xx to the recipient or the message is the relay's final word on this mail;
        // 5xx to the greeting, the login or the sender (the same for every mail) says the
        // relay is unusable for now, and anything else may pass later.
        const permanent = code !== undefined && code >= 500 && code < 600 &&
          (command === "RCPT TO" || command === "DATA");
        throw new MailSendError(
          `SMTP send failed${code ? ` (${code})` : ""}: ${(e as Error).message}`,
          { permanent, cause: e },
        );
      }
    },
    close: () => transport.close(),
  };
}
