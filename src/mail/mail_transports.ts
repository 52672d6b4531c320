/** Picks the mail transport from the configuration: SMTP when `SMTP_URL` is set, else the outbox. */

import type { Config } from "../config.ts";
import { createOutboxTransport } from "./outbox_transport.ts";
import { createSmtpTransport } from "./smtp_transport.ts";
import type { MailTransport } from "./transport.ts";

/** The transport kinds. */
export type MailTransportKind = "smtp" | "outbox";

/** Creates the transport of `kind` (default: from `SMTP_URL`). */
export function createMailTransport(
  mail: Config["mail"],
  kind: string = mail.smtpUrl ? "smtp" : "outbox",
): MailTransport {
  switch (kind) {
    case "smtp":
      if (!mail.smtpUrl) throw new Error('Mail transport "smtp" needs SMTP_URL');
      return createSmtpTransport(mail.smtpUrl);
    case "outbox":
      return createOutboxTransport(mail.outboxDir);
    default:
      throw new Error(`Unknown mail transport "${kind}" (expected "smtp" or "outbox")`);
  }
}
