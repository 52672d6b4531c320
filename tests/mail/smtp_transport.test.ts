import assert from "node:assert/strict";
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
