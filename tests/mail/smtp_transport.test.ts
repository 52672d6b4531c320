import assert from "node:assert/strict";
import { SMTPServer } from "smtp-server";
import { createSmtpTransport } from "../../src/mail/smtp_transport.ts";
import { MailSendError } from "../../src/mail/transport.ts";
import { startSmtp } from "../_support/smtp.ts";

const mail = (address: string) => ({
  messageId: "<abc123@relais.test>",
  from: "relais <no-reply@relais.test>",
  to: { address },
  subject: "Demande de retour sur « Projet »",
  text: "Bonjour,\nTexte",
  html: "<p>Bonjour,</p>",
  headers: { "List-Unsubscribe": "<https://relais.test/v1/unsubscribe?t=x>" },
});

Deno.test("smtp transport hands a mail with its headers to a real SMTP server", async () => {
  const smtp = await startSmtp();
  const transport = createSmtpTransport(smtp.url);
  try {
    await transport.send(mail("camille@example.org"));
    const [received] = await smtp.waitFor(1);
    assert.equal(received.subject, "Demande de retour sur « Projet »");
    assert.equal(received.to, "camille@example.org");
    assert.equal(received.messageId, "<abc123@relais.test>");
    assert.equal(
      received.headers.get("list-unsubscribe"),
      "<https://relais.test/v1/unsubscribe?t=x>",
    );
    assert.match(received.text, /Texte/);
    assert.match(received.html, /<p>Bonjour,<\/p>/);
  } finally {
    transport.close();
    await smtp.stop();
  }
});

Deno.test("smtp transport reports a stopped relay as a temporary failure", async () => {
  const smtp = await startSmtp();
  await smtp.stop();
  const transport = createSmtpTransport(smtp.url, { timeoutMs: 2000 });
  try {
    await assert.rejects(
      transport.send(mail("camille@example.org")),
      (e) => e instanceof MailSendError && !e.permanent,
    );
  } finally {
    transport.close();
  }
});

// deno-lint-ignore no-explicit-any
type Any = any;

/** A real SMTP server that answers with the given hooks (smtp-server's own options). */
async function relay(hooks: Record<string, unknown>) {
  const server: Any = new SMTPServer({
    disabledCommands: ["STARTTLS"],
    allowInsecureAuth: true,
    logger: false,
    ...hooks,
  });
  server.on("error", () => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return {
    url: `smtp://127.0.0.1:${server.server.address().port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const refuse = (code: number, message: string) =>
  Object.assign(new Error(message), { responseCode: code });

Deno.test("smtp transport reports a relay refusing the session with 5xx as a temporary failure", async () => {
  // A 5xx before any mail (the greeting, the login) is about the relay, not the mail:
  // made permanent, it would send every queued mail to the dead letters.
  const refusing = await relay({
    authOptional: true,
    onConnect: (_: unknown, done: (e?: Error) => void) => done(refuse(554, "No service")),
  });
  const locked = await relay({
    onAuth: (_: unknown, __: unknown, done: (e?: Error) => void) =>
      done(refuse(535, "Authentication failed")),
  });
  const refusingTransport = createSmtpTransport(refusing.url, { timeoutMs: 2000 });
  const lockedUrl = locked.url.replace("smtp://", "smtp://relais:wrong@");
  const lockedTransport = createSmtpTransport(lockedUrl, { timeoutMs: 2000 });
  try {
    for (const transport of [refusingTransport, lockedTransport]) {
      await assert.rejects(
        transport.send(mail("camille@example.org")),
        (e) => e instanceof MailSendError && /\(5\d\d\)/.test(e.message) && !e.permanent,
      );
    }
  } finally {
    refusingTransport.close();
    lockedTransport.close();
    await refusing.close();
    await locked.close();
  }
});

Deno.test("smtp transport reports a recipient the relay refuses with 5xx as a permanent failure", async () => {
  const server = await relay({
    authOptional: true,
    onRcptTo: (_: unknown, __: unknown, done: (e?: Error) => void) =>
      done(refuse(550, "No such user")),
  });
  const transport = createSmtpTransport(server.url, { timeoutMs: 2000 });
  try {
    await assert.rejects(
      transport.send(mail("nobody@example.org")),
      (e) => e instanceof MailSendError && /\(550\)/.test(e.message) && e.permanent,
    );
  } finally {
    transport.close();
    await server.close();
  }
});
