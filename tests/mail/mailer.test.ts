import assert from "node:assert/strict";
import { simpleParser } from "mailparser";
import * as v from "valibot";
import { createDirectoryAudienceResolver } from "../../src/audience/directory_audience.ts";
import { createPublisher } from "../../src/delivery/publisher.ts";
import { DirectoryEntryInputSchema, toEntry } from "../../src/directory/directory.ts";
import { createKvDirectory } from "../../src/directory/kv_directory.ts";
import { createKvMailQueue } from "../../src/mail/kv_mail_queue.ts";
import { createMailer } from "../../src/mail/mailer.ts";
import { createSmtpTransport } from "../../src/mail/smtp_transport.ts";
import { createUnsubscribeTokens } from "../../src/mail/unsubscribe.ts";
import { createFanoutPlans } from "../../src/preferences/fanout_plan.ts";
import { createKvPreferences } from "../../src/preferences/kv_preferences.ts";
import { PreferencesSchema } from "../../src/preferences/preferences.ts";
import { EnvelopeSchema } from "../../src/schemas/envelope.ts";
import { createKvStore } from "../../src/store/kv_store.ts";
import {
  FIXTURE,
  fixtureEvents,
  loadFixtureDirectory,
  type LooseJson,
} from "../_support/directory.ts";
import { startSmtp, type TestSmtp } from "../_support/smtp.ts";

const GRACE = 10 * 60_000;

/** The addresses of a raw mail's `To` header, as a mail client reads them. */
async function toHeader(raw: string): Promise<{ name: string; address: string }[]> {
  // deno-lint-ignore no-explicit-any
  const parsed: any = await (simpleParser as any)(raw);
  return parsed.to.value.map((a: { name: string; address: string }) => ({
    name: a.name,
    address: a.address,
  }));
}
const { helene, emma, admin } = FIXTURE;

/** Everything the mailer runs on, with a clock the test moves. */
async function harness(options: { maxAttempts?: number; smtp?: TestSmtp } = {}) {
  const smtp = options.smtp ?? await startSmtp();
  const kv = await Deno.openKv(":memory:");
  const store = createKvStore(kv, { recentWindowMs: 120_000 });
  const directory = createKvDirectory(kv);
  await loadFixtureDirectory(directory);
  const preferences = createKvPreferences(kv);
  const queue = createKvMailQueue(kv);
  const transport = createSmtpTransport(smtp.url, { timeoutMs: 2000 });
  const tokens = createUnsubscribeTokens("secret");
  // 2026-01-15 10:00 in Paris.
  let clock = Date.parse("2026-01-15T09:00:00Z");
  const now = () => clock;
  const publisher = createPublisher({
    store,
    audience: createDirectoryAudienceResolver(directory, { maxAudience: 100 }),
    syncFanoutLimit: 1000,
    deliverLive() {},
    onError(id, e) {
      throw new Error(`Fan-out of ${id} failed: ${e}`);
    },
    plan: createFanoutPlans({ preferences, graceMs: GRACE }),
    now,
  });
  const mailer = createMailer({
    queue,
    store,
    directory,
    preferences,
    transport,
    tokens,
    from: "relais <no-reply@relais.test>",
    publicUrl: "https://relais.test",
    appUrl: "https://portfolio.test",
    dailyDigestAt: "08:00",
    retryBaseMs: 1000,
    maxAttempts: options.maxAttempts ?? 8,
    now,
  });
  return {
    smtp,
    kv,
    store,
    directory,
    queue,
    preferences,
    tokens,
    mailer,
    advance: (ms: number) => void (clock += ms),
    async publish(name: string, patch: (e: LooseJson) => void = () => {}) {
      const raw = structuredClone((await fixtureEvents())[name]);
      (raw.metadata as Record<string, unknown>).id = crypto.randomUUID();
      delete (raw.metadata as Record<string, unknown>).expiration;
      patch(raw);
      const envelope = v.parse(EnvelopeSchema, raw);
      await publisher.publish(envelope);
      return envelope.metadata.id;
    },
    async close() {
      transport.close();
      kv.close();
      if (!options.smtp) await smtp.stop();
    },
  };
}

Deno.test("mailer mails an unread notification after the grace period, in the user's locale", async () => {
  const h = await harness();
  try {
    await h.publish("ask_for_feedback");

    const early = await h.mailer.runDue(10);
    assert.equal(early.sent, 0);
    assert.equal(early.depth, 1);

    h.advance(GRACE);
    const run = await h.mailer.runDue(10);
    assert.equal(run.sent, 1);
    assert.equal(run.depth, 0);
    const [mail] = await h.smtp.waitFor(1);
    assert.match(mail.to, /helene\.dubois@univ-exemple\.fr/);
    assert.equal(mail.subject, "Demande de retour sur « Projet web — sprint 2 »");
    assert.match(mail.text, /Bonjour Prof\. Hélène Dubois,/);
    assert.match(mail.text, /Camille Martin vous demande un retour/);
    assert.match(mail.html, /<html lang="fr">/);
    const unsubscribe = mail.headers.get("list-unsubscribe")!;
    assert.match(unsubscribe, /^<https:\/\/relais\.test\/v1\/unsubscribe\?t=[\w.-]+>$/);
    assert.equal(mail.headers.get("list-unsubscribe-post"), "List-Unsubscribe=One-Click");
    const token = new URL(unsubscribe.slice(1, -1)).searchParams.get("t")!;
    assert.deepEqual(await h.tokens.verify(token), { user: helene, sources: ["feedback"] });
    assert.match(mail.text, new RegExp(token));
  } finally {
    await h.close();
  }
});

Deno.test("mailer sends nothing for a notification read in-app during the grace period", async () => {
  const h = await harness();
  try {
    const id = await h.publish("ask_for_feedback");
    assert.equal(await h.store.markRead(helene, id, Date.now()), true);

    h.advance(GRACE);
    const run = await h.mailer.runDue(10);
    assert.deepEqual([run.sent, run.skipped, run.depth], [0, 1, 0]);
    assert.equal(h.smtp.mails.length, 0);
  } finally {
    await h.close();
  }
});

Deno.test("mailer mails a HIGH notification at once, in English for an English user", async () => {
  const h = await harness();
  try {
    await h.publish("maintenance_broadcast", (e) => {
      e.routing.audience = { type: "USER", targets: [emma] };
    });
    const run = await h.mailer.runDue(10);
    assert.equal(run.sent, 1);
    const [mail] = await h.smtp.waitFor(1);
    assert.equal(mail.subject, "Scheduled maintenance");
    assert.match(mail.text, /^Hello Emma Lefèvre,/);
    assert.match(mail.html, /<html lang="en">/);
  } finally {
    await h.close();
  }
});

Deno.test("mailer folds notifications into the user's hourly digest", async () => {
  const h = await harness();
  try {
    await h.preferences.put(
      helene,
      v.parse(PreferencesSchema, {
        sources: { feedback: { channels: ["inapp", "email"], digest: "hourly" } },
      }),
    );
    await h.publish("ask_for_feedback");
    await h.publish("ask_for_feedback", (e) => {
      e.payload.parameters.activityTitle = "Rapport de stage";
    });

    h.advance(GRACE); // 10:10 Paris
    const folded = await h.mailer.runDue(10);
    assert.deepEqual([folded.sent, folded.deferred, folded.depth], [0, 2, 1]);

    h.advance(50 * 60_000); // 11:00 Paris: the hourly digest is due.
    const run = await h.mailer.runDue(10);
    assert.equal(run.sent, 1);
    const [mail] = await h.smtp.waitFor(1);
    assert.equal(mail.subject, "Votre résumé : 2 notifications");
    assert.match(mail.text, /Projet web — sprint 2/);
    assert.match(mail.text, /Rapport de stage/);
    assert.equal(run.depth, 0);
  } finally {
    await h.close();
  }
});

Deno.test("mailer holds mail during quiet hours and sends it when they end", async () => {
  const h = await harness();
  try {
    // 10:00 to 12:00 in Paris covers the end of the grace period (10:10).
    await h.preferences.put(
      helene,
      v.parse(PreferencesSchema, { quiet_hours: { start: "10:00", end: "12:00" } }),
    );
    await h.publish("ask_for_feedback");

    h.advance(GRACE);
    const held = await h.mailer.runDue(10);
    assert.deepEqual([held.sent, held.deferred], [0, 1]);
    assert.equal(held.nextDueAt, Date.parse("2026-01-15T11:00:00Z"));

    h.advance(109 * 60_000);
    assert.equal((await h.mailer.runDue(10)).sent, 0);
    h.advance(60_000);
    assert.equal((await h.mailer.runDue(10)).sent, 1);
    await h.smtp.waitFor(1);
  } finally {
    await h.close();
  }
});

Deno.test("mailer skips a user who turned email off for the source, even for a HIGH item", async () => {
  const h = await harness();
  try {
    await h.preferences.put(
      admin,
      v.parse(PreferencesSchema, { sources: { ops: { channels: ["inapp"] } } }),
    );
    await h.publish("maintenance_broadcast", (e) => {
      e.metadata.source = "ops";
    });
    const run = await h.mailer.runDue(10);
    assert.equal(run.sent, 1);
    const [mail] = await h.smtp.waitFor(1);
    assert.match(mail.to, /helene\.dubois/);
  } finally {
    await h.close();
  }
});

Deno.test("mailer retries with exponential backoff, then dead-letters after the last attempt", async () => {
  const smtp = await startSmtp();
  await smtp.stop();
  const h = await harness({ maxAttempts: 3, smtp });
  try {
    await h.publish("maintenance_broadcast", (e) => {
      e.routing.audience = { type: "USER", targets: [emma] };
    });
    const first = await h.mailer.runDue(10);
    assert.deepEqual([first.sent, first.failed, first.transportDown], [0, 1, true]);
    const t0 = Date.parse("2026-01-15T09:00:00Z");
    assert.equal(first.nextDueAt, t0 + 1000);

    h.advance(1000);
    const second = await h.mailer.runDue(10);
    assert.equal(second.failed, 1);
    assert.equal(second.nextDueAt, t0 + 1000 + 2000);

    h.advance(2000);
    const third = await h.mailer.runDue(10);
    assert.deepEqual([third.deadLettered, third.depth], [1, 0]);
    const [dead] = await h.queue.listDeadLetters(10);
    assert.equal(dead.task.user, emma);
    assert.match(dead.reason, /gave up after 3 attempts/);
  } finally {
    await h.close();
  }
});

Deno.test("mailer sends to the directory's address only, whatever the display name holds", async () => {
  const h = await harness();
  try {
    const people = [
      { id: "dupont", name: "Dupont \\", email: "dupont@univ-exemple.fr" },
      { id: "eve", name: '"Eve, <evil@x.test>"', email: "eve@univ-exemple.fr" },
      { id: "mallory", name: "<evil@x.test>, Mallory \\", email: "mallory@univ-exemple.fr" },
    ];
    for (const p of people) {
      await h.directory.put(
        toEntry(p.id, v.parse(DirectoryEntryInputSchema, { ...p, locale: "fr" }), Date.now()),
      );
    }
    await h.publish("ask_for_feedback", (e) => {
      e.routing.audience.targets = people.map((p) => p.id);
    });
    h.advance(GRACE);
    assert.equal((await h.mailer.runDue(10)).sent, 3);
    const mails = await h.smtp.waitFor(3);
    assert.equal(mails.length, 3);
    for (const p of people) {
      const mine = mails.filter((m) => m.recipients.includes(p.email));
      assert.equal(mine.length, 1, `one mail to "${p.email}"`);
      assert.deepEqual(mine[0].recipients, [p.email]);
      // The header names the same single address, with the name intact.
      assert.deepEqual(await toHeader(mine[0].raw), [{ name: p.name, address: p.email }]);
    }
  } finally {
    await h.close();
  }
});
