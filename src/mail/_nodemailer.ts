/**
 * nodemailer, typed by hand with the few calls relais makes: `@types/nodemailer` brings
 * a copy of `@types/node` whose globals clash with Deno's own.
 */

import nodemailerModule from "nodemailer";

/** The message fields relais gives nodemailer. */
export interface NodemailerMessage {
  messageId: string;
  from: string;
  to: string;
  subject: string;
  text: string;
  html: string;
  headers: Record<string, string>;
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
