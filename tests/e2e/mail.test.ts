/** Email end to end: a real SMTP server (smtp-server, in-process), the outbox, outages and crashes. */

import assert from "node:assert/strict";
import { spawnServer } from "../_support/process.ts";
import { envelope, eventually, SERVICE_KEY, startServer } from "../_support/server.ts";
import { FIXTURE, fixtureUsers, freshFixture, putFixtureUsers } from "../_support/directory.ts";
import { inspectMailer, mailQueueDrained } from "../_support/mail_queue.ts";
import { parseMail, type ReceivedMail, startSmtp } from "../_support/smtp.ts";

const { helene, admin, emma } = FIXTURE;

const pairs = (mails: ReceivedMail[]) => mails.map((m) => `${m.to} ${m.subject}`).sort();

Deno.test("a HIGH notification is mailed at once through SMTP, in each user's locale, with List-Unsubscribe", async () => {
  const smtp = await startSmtp();
  const server = await startServer({
    SMTP_URL: smtp.url,
    RELAIS_PUBLIC_URL: "https://relais.test",
  });
  try {
    await putFixtureUsers(server.request, SERVICE_KEY);
    assert.equal((await server.publish(await freshFixture("maintenance_broadcast"))).status, 202);
    await server.publish(
      await freshFixture("maintenance_broadcast", (e) => {
        e.routing.audience = { type: "USER", targets: [emma] };
      }),
    );

    const mails = await smtp.waitFor(3);
    assert.deepEqual(pairs(mails), [
      '"Admin Univ Exemple" <admin.portfolio@univ-exemple.fr> Maintenance programmée',
      '"Emma Lefèvre" <emma.lefevre@etu.univ-exemple.fr> Scheduled maintenance',
      '"Prof. Hélène Dubois" <helene.dubois@univ-exemple.fr> Maintenance programmée',
    ]);
    const fr = mails.find((m) => m.to.includes("helene"))!;
    assert.match(
      fr.text,
      /^Bonjour Prof\. Hélène Dubois,\n\nMaintenance programmée\nLe portfolio sera indisponible/,
    );
    assert.match(fr.html, /<html lang="fr">[\s\S]*Le portfolio sera indisponible samedi/);
    const en = mails.find((m) => m.to.includes("emma"))!;
    assert.match(en.text, /The portfolio will be unavailable on Saturday/);
    assert.match(en.html, /<html lang="en">/);
    const link = /^<(https:\/\/relais\.test\/v1\/unsubscribe\?t=[\w.-]+)>$/.exec(
      fr.headers.get("list-unsubscribe")!,
    )![1];
    assert.ok(fr.html.includes(link.replaceAll("&", "&amp;")));

    // One click (RFC 8058) turns email off for that source; the page alone changes nothing.
    const path = link.replace("https://relais.test", "");
    assert.equal((await fetch(`${server.origin}${path}`)).status, 200);
    const click = await fetch(`${server.origin}${path}`, {
      method: "POST",
      body: "List-Unsubscribe=One-Click",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    await click.body?.cancel();
    assert.equal(click.status, 200);
    const prefs = await server.request("/v1/me/preferences", {
      bearer: await server.token(helene),
    });
    assert.deepEqual(prefs.body.sources, {
      platform: { channels: ["inapp", "push"], digest: "off" },
    });
    // A forged link is refused.
    assert.equal((await server.request(`${path}x`, { method: "POST" })).status, 400);

    // The maintenance notice is critical (HIGH from the platform): it ignores mutes, so
    // both still get the next one.
    await server.publish(await freshFixture("maintenance_broadcast"));
    await smtp.waitFor(5);
  } finally {
    await server.close();
    await smtp.stop();
  }
});

Deno.test("a notification still unread after the grace period is mailed; one read in time is not", async () => {
  const smtp = await startSmtp();
  const server = await startServer({ SMTP_URL: smtp.url, RELAIS_MAIL_GRACE_MS: "600" });
  try {
    await putFixtureUsers(server.request, SERVICE_KEY);
    const unread = await freshFixture("ask_for_feedback");
    const read = await freshFixture("ask_for_feedback", (e) => {
      e.payload.parameters.activityTitle = "Lu à temps";
    });
    await server.publish(unread);
    await server.publish(read);
    const token = await server.token(helene);
    const marked = await server.request(`/v1/me/notifications/${read.metadata.id}/read`, {
      method: "POST",
      bearer: token,
    });
    assert.equal(marked.status, 200);
    assert.equal(smtp.mails.length, 0);

    const [mail] = await smtp.waitFor(1, 10_000);
    assert.equal(mail.subject, "Demande de retour sur « Projet web — sprint 2 »");
    // Barrier: once the queue is empty, the read one can no longer be mailed.
    await mailQueueDrained(server.origin);
    assert.equal(smtp.mails.length, 1);
  } finally {
    await server.close();
    await smtp.stop();
  }
});

Deno.test("with the SMTP server stopped for a while, mails wait and each arrives exactly once", async () => {
  const smtp = await startSmtp();
  await smtp.stop();
  const server = await startServer({
    SMTP_URL: smtp.url,
    RELAIS_MAIL_RETRY_BASE_MS: "100",
    RELAIS_MAIL_BREAKER_THRESHOLD: "2",
    RELAIS_MAIL_BREAKER_COOLDOWN_MS: "300",
  });
  try {
    await putFixtureUsers(server.request, SERVICE_KEY);
    const subjects = ["Panne 1", "Panne 2", "Panne 3"];
    for (const title of subjects) {
      await server.publish(
        await freshFixture("maintenance_broadcast", (e) => {
          e.payload.fr.title = title;
        }),
      );
    }
    // The breaker opens while the relay is down; the debug endpoint shows it.
    const inspect = () => server.request("/v1/admin/actors/mailer/main", { apiKey: SERVICE_KEY });
    const open = await eventually(
      async () => {
        const res = await inspect();
        return res.body.state === "open" ? res.body : undefined;
      },
      10_000,
      "the mailer's breaker to open",
    );
    const context = open.context as {
      breaker: { state: string };
      queueDepth: number;
      transport: string;
    };
    assert.equal(context.breaker.state, "open");
    assert.equal(context.transport, "smtp");
    assert.ok(context.queueDepth >= 1);
    assert.equal(smtp.mails.length, 0);

    // The outage lasts: a probe after the cooldown fails too, and the breaker opens again.
    await eventually(
      async () => (await inspectMailer(server.origin)).context.breaker.failures >= 3,
      10_000,
      "a failed probe",
    );
    assert.equal(smtp.mails.length, 0);
    await smtp.start();
    const mails = await smtp.waitFor(6, 20_000);
    const expected = subjects.flatMap((s) => [
      `"Admin Univ Exemple" <admin.portfolio@univ-exemple.fr> ${s}`,
      `"Prof. Hélène Dubois" <helene.dubois@univ-exemple.fr> ${s}`,
    ]).sort();
    assert.deepEqual(pairs(mails), expected);
    assert.equal(new Set(mails.map((m) => m.messageId)).size, 6);
    const closed = await eventually(
      async () => {
        const res = await inspect();
        const ctx = res.body.context as { breaker: { state: string }; queueDepth: number };
        return ctx.breaker.state === "closed" && ctx.queueDepth === 0 ? ctx : undefined;
      },
      5000,
      "the breaker to close",
    );
    assert.equal(closed.queueDepth, 0);
    // The queue is empty: no mail is left to arrive twice.
    assert.equal(smtp.mails.length, 6);
  } finally {
    await server.close();
    await smtp.stop();
  }
});

Deno.test("without SMTP_URL each mail becomes an .eml file in the outbox", async () => {
  const outbox = await Deno.makeTempDir({ prefix: "relais-outbox-" });
  const server = await startServer({ RELAIS_OUTBOX_DIR: outbox });
  try {
    await putFixtureUsers(server.request, SERVICE_KEY);
    await server.publish(await freshFixture("maintenance_broadcast"));
    const files = await eventually(
      () => {
        const names = [...Deno.readDirSync(outbox)].map((f) => f.name);
        return names.filter((n) => n.endsWith(".eml")).length === 2 ? names : undefined;
      },
      10_000,
      "two .eml files",
    );
    const mails = await Promise.all(
      files.map(async (f) => parseMail(await Deno.readTextFile(`${outbox}/${f}`))),
    );
    assert.deepEqual(mails.map((m) => m.subject), [
      "Maintenance programmée",
      "Maintenance programmée",
    ]);
    assert.ok(mails.every((m) => m.headers.has("list-unsubscribe")));
  } finally {
    await server.close();
    await Deno.remove(outbox, { recursive: true });
  }
});

Deno.test("mail queued before a SIGKILL is sent once after the restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relais-mail-crash-" });
  const smtp = await startSmtp();
  await smtp.stop();
  const env = {
    RELAIS_KV_PATH: `${dir}/relais.kv`,
    SMTP_URL: smtp.url,
    RELAIS_MAIL_RETRY_BASE_MS: "100",
    RELAIS_MAIL_BREAKER_COOLDOWN_MS: "200",
  };
  const first = await spawnServer(env);
  try {
    for (const user of await fixtureUsers()) {
      const res = await fetch(`${first.origin}/v1/users/${user.id}`, {
        method: "PUT",
        headers: { "x-api-key": SERVICE_KEY, "content-type": "application/json" },
        body: JSON.stringify(user),
      });
      await res.body?.cancel();
    }
    for (let i = 0; i < 4; i++) {
      const e = envelope([helene, admin], {
        metadata: { priority: "HIGH" },
        routing: { channels: ["inapp", "email"] },
      });
      const res = await fetch(`${first.origin}/v1/events`, {
        method: "POST",
        headers: { "x-api-key": SERVICE_KEY, "content-type": "application/json" },
        body: JSON.stringify(e),
      });
      await res.body?.cancel();
      assert.equal(res.status, 202);
    }
  } finally {
    await first.kill("SIGKILL");
  }
  await smtp.start();
  const second = await spawnServer(env);
  try {
    await smtp.waitFor(8, 20_000);
    // Barrier: once the queue is empty, no mail is left to arrive twice.
    await mailQueueDrained(second.origin);
    assert.equal(smtp.mails.length, 8);
    assert.equal(new Set(smtp.mails.map((m) => m.messageId)).size, 8);
  } finally {
    await second.kill("SIGTERM");
    await smtp.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
