/** A real SMTP server in-process (`smtp-server`), with every received mail parsed (`mailparser`). */

import { simpleParser } from "mailparser";
import { SMTPServer } from "smtp-server";

/** A received and parsed mail. */
export interface ReceivedMail {
  to: string;
  /** The SMTP envelope's recipients (`RCPT TO`), where the mail really goes. */
  recipients: string[];
  subject: string;
  text: string;
  html: string;
  messageId: string;
  /** Raw header lines by lower-case name. */
  headers: Map<string, string>;
  raw: string;
}

/** A running test SMTP server. */
export interface TestSmtp {
  port: number;
  url: string;
  mails: ReceivedMail[];
  /** Stops listening (the port is kept for {@linkcode TestSmtp.start}). */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  /** Waits until `count` mails arrived. */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedMail[]>;
}

// deno-lint-ignore no-explicit-any
type Any = any;

/** Parses a raw RFC 5322 message. */
export async function parseMail(raw: string, recipients: string[] = []): Promise<ReceivedMail> {
  const parsed: Any = await (simpleParser as Any)(raw);
  const headers = new Map<string, string>();
  for (const line of parsed.headerLines as { key: string; line: string }[]) {
    headers.set(line.key, line.line.slice(line.line.indexOf(":") + 1).trim());
  }
  return {
    to: parsed.to?.text ?? "",
    recipients,
    subject: parsed.subject ?? "",
    text: parsed.text ?? "",
    html: typeof parsed.html === "string" ? parsed.html : "",
    messageId: parsed.messageId ?? "",
    headers,
    raw,
  };
}

/** Starts an SMTP server on 127.0.0.1 (a random port unless `port` is given). */
export async function startSmtp(port = 0): Promise<TestSmtp> {
  const mails: ReceivedMail[] = [];
  let server: Any;

  async function listen(p: number): Promise<number> {
    server = new SMTPServer({
      authOptional: true,
      disabledCommands: ["STARTTLS"],
      logger: false,
      onData(stream: Any, session: Any, callback: (e?: Error) => void) {
        const recipients = (session.envelope.rcptTo as { address: string }[]).map((r) => r.address);
        const chunks: Uint8Array[] = [];
        stream.on("data", (c: Uint8Array) => chunks.push(c));
        stream.on("end", async () => {
          const raw = new TextDecoder().decode(
            new Uint8Array(chunks.flatMap((c) => [...c])),
          );
          mails.push(await parseMail(raw, recipients));
          callback();
        });
      },
    });
    server.on("error", () => {});
    await new Promise<void>((resolve, reject) => {
      server.server.once("error", reject);
      server.listen(p, "127.0.0.1", () => resolve());
    });
    return server.server.address().port;
  }

  const actual = await listen(port);
  return {
    port: actual,
    url: `smtp://127.0.0.1:${actual}`,
    mails,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
    async start() {
      await listen(actual);
    },
    async waitFor(count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (mails.length < count) {
        if (Date.now() > deadline) {
          throw new Error(`Expected ${count} mails within ${timeoutMs} ms, got ${mails.length}`);
        }
        await new Promise((r) => setTimeout(r, 25)); // poll interval of a bounded wait
      }
      return mails;
    },
  };
}
