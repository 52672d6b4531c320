/**
 * nodemailer, typed by hand with the few calls relais makes: `@types/nodemailer` brings
 * a copy of `@types/node` whose globals clash with Deno's own.
 */

import nodemailerModule from "nodemailer";
import type { MailAddress, OutgoingMail } from "./transport.ts";

/**
 * The message relais gives nodemailer: the mail, its recipient an object rather than a
 * header string, so nodemailer encodes the name and takes the address as is.
 */
export type NodemailerMessage = Omit<OutgoingMail, "to"> & { to: Required<MailAddress> };

/** The nodemailer message of a mail, the same for every adapter built on nodemailer. */
export function toNodemailer(mail: OutgoingMail): NodemailerMessage {
  return {
    messageId: mail.messageId,
    from: mail.from,
    to: { name: mail.to.name ?? "", address: mail.to.address },
    subject: mail.subject,
    text: mail.text,
    html: mail.html,
    headers: mail.headers,
  };
}

/** A nodemailer transport. */
export interface NodemailerTransport {
  sendMail(message: NodemailerMessage): Promise<{ messageId: string; message?: unknown }>;
  close(): void;
}

/** `nodemailer.createTransport` with SMTP or stream options. */
export const createTransport = (nodemailerModule as unknown as {
  createTransport(options: Record<string, unknown>): NodemailerTransport;
}).createTransport;
