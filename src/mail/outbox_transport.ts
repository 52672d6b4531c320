/**
 * The outbox adapter of the mail transport: each mail becomes an `.eml` file, built by
 * nodemailer, named after its message id so that sending the same mail again rewrites
 * the same file instead of adding one. Files appear whole: written aside, then renamed.
 * It writes through `node:fs/promises`, which Deno and Node both provide.
 */

import { mkdir, rename, writeFile } from "node:fs/promises";
import { createTransport, toNodemailer } from "./_nodemailer.ts";
import { MailSendError, type MailTransport } from "./transport.ts";

/** Builds raw RFC 5322 messages without sending them. */
const builder = createTransport({ streamTransport: true, buffer: true, newline: "windows" });

/** A file name for a message id: its safe characters only. */
export function emlName(messageId: string): string {
  return `${messageId.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^_+|_+$/g, "")}.eml`;
}

/** Writes mail into `dir` (created if needed). */
export function createOutboxTransport(dir: string): MailTransport {
  let ready: Promise<void> | undefined;
  return {
    kind: "outbox",
    async send(mail) {
      try {
        ready ??= mkdir(dir, { recursive: true }).then(() => {});
        await ready;
        const info = await builder.sendMail(toNodemailer(mail));
        const path = `${dir}/${emlName(mail.messageId)}`;
        await writeFile(`${path}.part`, info.message as unknown as Uint8Array);
        await rename(`${path}.part`, path);
      } catch (e) {
        ready = undefined;
        throw new MailSendError(`Cannot write to the outbox: ${(e as Error).message}`, {
          permanent: false,
          cause: e,
        });
      }
    },
    close() {},
  };
}
