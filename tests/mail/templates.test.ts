import assert from "node:assert/strict";
import * as v from "valibot";
import { renderDigest, renderNotification } from "../../src/mail/templates.ts";
import { EnvelopeSchema } from "../../src/schemas/envelope.ts";
import { fixtureEvents } from "../_support/directory.ts";

const links = {
  unsubscribeUrl: "https://relais.test/v1/unsubscribe?t=abc",
  appUrl: "https://portfolio.test",
};

async function fixture(name: string) {
  return v.parse(EnvelopeSchema, (await fixtureEvents())[name]);
}

Deno.test("templates render ASK_FOR_FEEDBACK in French and English with one layout", async () => {
  const envelope = await fixture("ask_for_feedback");
  const fr = renderNotification(envelope, { locale: "fr", name: "Hélène Dubois" }, links);
  const en = renderNotification(envelope, { locale: "en" }, links);

  assert.equal(fr.subject, "Demande de retour sur « Projet web — sprint 2 »");
  assert.match(fr.text, /^Bonjour Hélène Dubois,/);
  assert.match(
    fr.text,
    /Camille Martin vous demande un retour sur l’activité « Projet web — sprint 2 »\./,
  );
  assert.match(
    fr.text,
    /Ouvrir dans le portfolio : https:\/\/portfolio\.test\/activities\/42\/feedback/,
  );
  assert.match(
    fr.text,
    /Ne plus recevoir ces e-mails : https:\/\/relais\.test\/v1\/unsubscribe\?t=abc/,
  );
  assert.match(fr.html, /<html lang="fr">/);
  assert.match(fr.html, /href="https:\/\/relais\.test\/v1\/unsubscribe\?t=abc"/);

  assert.equal(en.subject, "Feedback requested on “Projet web — sprint 2”");
  assert.match(en.text, /^Hello,/);
  assert.match(en.text, /Camille Martin asked you for feedback on the activity/);
  assert.match(en.html, /<html lang="en">/);
  assert.match(en.html, /Stop these emails/);
});

Deno.test("templates render ACTIVITY_MODIFIED with the changed fields named in each locale", async () => {
  const envelope = await fixture("activity_modified");
  const fr = renderNotification(envelope, { locale: "fr" }, links);
  const en = renderNotification(envelope, { locale: "en" }, links);
  assert.equal(fr.subject, "Activité modifiée : Projet web — sprint 2");
  assert.match(fr.text, /a été modifiée \(date de fin, description\)\./);
  assert.equal(en.subject, "Activity updated: Projet web — sprint 2");
  assert.match(en.text, /was updated \(end date, description\)\./);
});

Deno.test("templates use the localized payload, falling back to the other locale", async () => {
  const envelope = await fixture("maintenance_broadcast");
  assert.equal(
    renderNotification(envelope, { locale: "fr" }, links).subject,
    "Maintenance programmée",
  );
  assert.equal(
    renderNotification(envelope, { locale: "en" }, links).subject,
    "Scheduled maintenance",
  );
  const frOnly = { ...envelope, payload: { fr: envelope.payload.fr } };
  assert.equal(
    renderNotification(frOnly, { locale: "en" }, links).subject,
    "Maintenance programmée",
  );
});

Deno.test("templates escape HTML and drop links that are not http(s)", async () => {
  const envelope = await fixture("maintenance_broadcast");
  const evil = {
    ...envelope,
    payload: { en: { title: "<script>x</script>", body: "a & b" }, url: "javascript:alert(1)" },
  };
  const mail = renderNotification(evil, { locale: "en", name: "<b>Eve</b>" }, links);
  assert.doesNotMatch(mail.html, /<script>|<b>Eve/);
  assert.match(mail.html, /&lt;script&gt;x&lt;\/script&gt;/);
  assert.match(mail.html, /a &amp; b/);
  assert.doesNotMatch(mail.html, /javascript:/);
});

Deno.test("templates render a digest listing each notification", async () => {
  const envelopes = [await fixture("ask_for_feedback"), await fixture("activity_modified")];
  const fr = renderDigest(envelopes, { locale: "fr", period: "hourly" }, links);
  assert.equal(fr.subject, "Votre résumé : 2 notifications");
  assert.match(fr.text, /Voici vos 2 notifications non lues\./);
  assert.match(fr.text, /Demande de retour sur « Projet web — sprint 2 »/);
  assert.match(fr.text, /Activité modifiée : Projet web — sprint 2/);
  const en = renderDigest(envelopes.slice(0, 1), { locale: "en", period: "daily" }, links);
  assert.equal(en.subject, "Your daily digest: 1 notification");
});
