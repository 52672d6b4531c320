import assert from "node:assert/strict";
import * as v from "valibot";
import { createMailRoutes } from "../../routes/mail.ts";
import { createServiceKeys } from "../../src/auth/service_keys.ts";
import { createKvDirectory } from "../../src/directory/kv_directory.ts";
import { createKvMailQueue } from "../../src/mail/kv_mail_queue.ts";
import { createUnsubscribeTokens } from "../../src/mail/unsubscribe.ts";
import { createKvPreferences } from "../../src/preferences/kv_preferences.ts";
import {
  chooseChannels,
  choosePush,
  PreferencesSchema,
} from "../../src/preferences/preferences.ts";
import { EnvelopeSchema } from "../../src/schemas/envelope.ts";
import { FIXTURE, fixtureEvents, loadFixtureDirectory } from "../_support/directory.ts";

/** The mail routes on a real KV, with the preferences they write and the fixture directory. */
async function harness() {
  const kv = await Deno.openKv(":memory:");
  const preferences = createKvPreferences(kv);
  const tokens = createUnsubscribeTokens("secret");
  const directory = createKvDirectory(kv);
  await loadFixtureDirectory(directory);
  const app = createMailRoutes({
    keys: createServiceKeys([]),
    tokens,
    preferences,
    queue: createKvMailQueue(kv),
    directory,
  });
  return { kv, app, preferences, tokens, directory };
}

const camille = FIXTURE.camille;

const feedback = async () =>
  v.parse(EnvelopeSchema, structuredClone((await fixtureEvents()).ask_for_feedback));

Deno.test("one-click unsubscribe turns email off for the mail's source and keeps Web Push", async () => {
  const h = await harness();
  try {
    const envelope = await feedback();
    const token = await h.tokens.sign({ user: camille, sources: ["feedback"] });
    // The GET page changes nothing: mail scanners fetch links.
    const page = await h.app.request(`/v1/unsubscribe?t=${token}`);
    await page.body?.cancel();
    assert.equal(page.status, 200);
    assert.equal(await h.preferences.get(camille), undefined);

    const res = await h.app.request(`/v1/unsubscribe?t=${token}`, {
      method: "POST",
      body: "List-Unsubscribe=One-Click",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    await res.body?.cancel();
    assert.equal(res.status, 200);
    const prefs = await h.preferences.get(camille);
    assert.deepEqual(chooseChannels(envelope, prefs), {
      inapp: true,
      email: false,
      digest: "off",
    });
    // Push is another channel: a user who had not chosen against it still gets it.
    assert.equal(choosePush(envelope, prefs), true);
  } finally {
    h.kv.close();
  }
});

Deno.test("one-click unsubscribe keeps the other channels a user chose for the source", async () => {
  const h = await harness();
  try {
    const envelope = await feedback();
    await h.preferences.put(
      camille,
      v.parse(PreferencesSchema, {
        sources: { feedback: { channels: ["email", "inapp"], digest: "daily" } },
      }),
    );
    const token = await h.tokens.sign({ user: camille, sources: ["feedback"] });
    const res = await h.app.request(`/v1/unsubscribe?t=${token}`, { method: "POST" });
    await res.body?.cancel();
    assert.equal(res.status, 200);
    const prefs = await h.preferences.get(camille);
    assert.deepEqual(prefs?.sources.feedback, { channels: ["inapp"], digest: "daily" });
    assert.equal(choosePush(envelope, prefs), false);
  } finally {
    h.kv.close();
  }
});

Deno.test("an erased user's old unsubscribe link answers as done and writes nothing", async () => {
  const h = await harness();
  try {
    const token = await h.tokens.sign({ user: camille, sources: ["feedback"] });
    assert.equal(await h.directory.delete(camille), true);
    const res = await h.app.request(`/v1/unsubscribe?t=${token}`, { method: "POST" });
    await res.body?.cancel();
    assert.equal(res.status, 200);
    // No record naming the user comes back after their erasure.
    assert.equal(await h.preferences.get(camille), undefined);
  } finally {
    h.kv.close();
  }
});
