import assert from "node:assert/strict";
import { createOutboxTransport, emlName } from "../../src/mail/outbox_transport.ts";
import { parseMail } from "../_support/smtp.ts";

Deno.test("outbox transport writes one .eml file per mail, rewritten when the mail is sent again", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relais-outbox-" });
  try {
    const transport = createOutboxTransport(`${dir}/outbox`);
    const mail = {
      messageId: "<0011aabb@relais.test>",
      from: "relais <no-reply@relais.test>",
      to: { address: "emma@example.org" },
      subject: "Scheduled maintenance",
      text: "Hello,\nBody",
      html: "<p>Hello,</p>",
      headers: { "List-Unsubscribe": "<https://relais.test/u>" },
    };
    await transport.send(mail);
    await transport.send(mail);

    const files = [...Deno.readDirSync(`${dir}/outbox`)].map((f) => f.name);
    assert.deepEqual(files, [emlName(mail.messageId)]);
    const parsed = await parseMail(await Deno.readTextFile(`${dir}/outbox/${files[0]}`));
    assert.equal(parsed.subject, "Scheduled maintenance");
    assert.equal(parsed.messageId, mail.messageId);
    assert.match(parsed.text, /Body/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
