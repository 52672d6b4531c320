/** Not drowning people: collapse keys, LOW grouping, the push budget and preferences, end to end. */

import assert from "node:assert/strict";
import { envelope, startServer } from "../_support/server.ts";
import type { Frame } from "../_support/ws_client.ts";

const idOf = (e: Record<string, unknown>) => (e.metadata as { id: string }).id;
/** Whether `f` is the event frame of envelope `e`. */
const isEvent = (e: Record<string, unknown>) => (f: Frame) =>
  f.type === "event" && f.envelope.metadata.id === idOf(e);

Deno.test("a collapse key replaces the unread older item: update frame, unread count unchanged", async () => {
  const server = await startServer();
  try {
    const { client, welcome } = await server.login("camille");
    const token = await server.token("camille");
    const inbox = () => server.request("/v1/me/notifications", { bearer: token });
    const collapsing = () => envelope(["camille"], { metadata: { collapse_key: "activity:42" } });

    const first = collapsing();
    await server.publish(first);
    assert.equal((await client.next((f) => f.type === "event")).envelope.metadata.id, idOf(first));

    const second = collapsing();
    await server.publish(second);
    const update = await client.next((f) => f.type === "update" || f.type === "event");
    assert.equal(update.type, "update");
    assert.equal(update.seq, 2);
    assert.equal(update.envelope.metadata.id, idOf(second));
    assert.deepEqual(update.replaces, { id: idOf(first), seq: 1 });
    const listed = await inbox();
    assert.equal(listed.body.unread_count, 1);
    assert.deepEqual((listed.body.items as { id: string }[]).map((i) => i.id), [idOf(second)]);

    // Once read, the item is not replaced: the next one is new and unread.
    await server.request(`/v1/me/notifications/${idOf(second)}/read`, {
      method: "POST",
      bearer: token,
    });
    const third = collapsing();
    await server.publish(third);
    const fresh = await client.next((f) => f.type === "update" || f.type === "event");
    assert.equal(fresh.type, "event");
    const after = await inbox();
    assert.equal(after.body.unread_count, 1);
    assert.deepEqual((after.body.items as { id: string }[]).map((i) => i.id), [
      idOf(third),
      idOf(second),
    ]);

    // A resume from the start skips the replaced item without calling it a gap.
    const again = await server.login("camille", { after: 0, epoch: welcome.epoch });
    assert.equal(again.welcome.epoch, welcome.epoch);
    assert.equal(again.welcome.recovered, true);
    const isEvent = (f: Frame) => f.type === "event" || f.type === "update";
    const replayed = [await again.client.next(isEvent), await again.client.next(isEvent)];
    assert.deepEqual(replayed.map((f) => f.envelope.metadata.id), [idOf(second), idOf(third)]);
    // Barrier: the next frame after the replay is the next live item, nothing in between.
    const next = envelope(["camille"]);
    await server.publish(next);
    assert.equal((await again.client.next(isEvent)).envelope.metadata.id, idOf(next));
  } finally {
    await server.close();
  }
});

Deno.test("LOW items within a short window reach the user as one batch frame", async () => {
  const server = await startServer({ RELAIS_LOW_WINDOW_MS: "1000" });
  try {
    const { client } = await server.login("yanis");
    const sent = Array.from(
      { length: 5 },
      () => envelope(["yanis"], { metadata: { priority: "LOW" } }),
    );
    for (const e of sent) assert.equal((await server.publish(e)).status, 202);
    const normal = envelope(["yanis"]);
    await server.publish(normal);

    // The NORMAL item is not held back by the LOW group, nor does it go out over it: the
    // group goes first, as one batch.
    const batch = await client.next((f) => f.type === "event" || f.type === "batch");
    assert.equal(batch.type, "batch");
    assert.deepEqual(
      batch.items.map((f: { envelope: { metadata: { id: string } } }) => f.envelope.metadata.id),
      sent.map(idOf),
    );
    assert.deepEqual(batch.items.map((f: { seq: number }) => f.seq), [1, 2, 3, 4, 5]);
    const next = await client.next((f) => f.type === "event" || f.type === "batch");
    assert.equal(next.type, "event");
    assert.equal(next.envelope.metadata.id, idOf(normal));
    assert.deepEqual(
      await client.settled((f) => f.type === "event" || f.type === "batch"),
      [],
    );
  } finally {
    await server.close();
  }
});

Deno.test("a LOW item goes out before a later one: a client that leaves within its window misses nothing", async () => {
  const server = await startServer({ RELAIS_LOW_WINDOW_MS: "300" });
  try {
    const first = await server.login("yanis");
    const low = envelope(["yanis"], { metadata: { priority: "LOW" } });
    await server.publish(low);
    const normal = envelope(["yanis"]);
    await server.publish(normal);
    const got = await first.client.before(
      (f) => f.type === "event",
      (f) => f.type === "batch",
    );
    assert.deepEqual(
      got.flatMap((b) =>
        b.items.map((f: { envelope: { metadata: { id: string } } }) => f.envelope.metadata.id)
      ),
      [idOf(low)],
      "the LOW item came before the later one",
    );
    const position = first.client.received.find((f) => f.type === "event")!;
    assert.equal(position.envelope.metadata.id, idOf(normal));
    // The client leaves, and comes back once the LOW window has ended, at its position.
    await first.client.close();
    await new Promise((resolve) => setTimeout(resolve, 600));
    const again = await server.login("yanis", { after: position.seq, epoch: first.welcome.epoch });
    assert.equal(again.welcome.recovered, true);
    assert.deepEqual(
      await again.client.settled((f) => f.type === "event" || f.type === "batch", 500),
      [],
    );
  } finally {
    await server.close();
  }
});

Deno.test("the push budget folds the excess into one summary frame; critical items still go", async () => {
  const server = await startServer({
    RELAIS_PUSH_BUDGET: "3",
    RELAIS_PUSH_BUDGET_WINDOW_MS: "1500",
  });
  try {
    const { client } = await server.login("emma");
    for (let i = 0; i < 8; i++) await server.publish(envelope(["emma"]));
    const critical = envelope(["emma"], { metadata: { priority: "HIGH", source: "platform" } });
    await server.publish(critical);

    // The critical item goes out over the folded ones: their summary goes first, so that a
    // client that leaves before the window's end still knows of them; then again at its end.
    const pushed = await client.before(
      (f) => f.type === "summary",
      (f) => f.type === "event",
      5000,
    );
    assert.deepEqual(pushed.map((f) => f.seq), [1, 2, 3]);
    const summary = client.received.find((f) => f.type === "summary");
    assert.deepEqual(summary, { type: "summary", count: 5, first_seq: 4, last_seq: 8 });
    const next = await client.next((f) => f.type === "event" || f.type === "summary");
    assert.equal(next.seq, 9);
    assert.equal(next.envelope.metadata.id, idOf(critical));
    const end = await client.next((f) => f.type === "summary", 5000);
    assert.deepEqual(end, summary, "the window's end tells it whole");

    // A new window: pushes flow again, and nothing folded was lost from the stream.
    await server.publish(envelope(["emma"]));
    assert.equal((await client.next((f) => f.type === "event")).seq, 10);
    const inbox = await server.request("/v1/me/notifications?limit=100", {
      bearer: await server.token("emma"),
    });
    assert.equal(inbox.body.unread_count, 10);
  } finally {
    await server.close();
  }
});

Deno.test("preferences mute a source in-app; critical items ignore mutes and the global switch", async () => {
  const server = await startServer();
  try {
    const token = await server.token("lucas");
    const { client } = await server.login("lucas");
    const defaults = await server.request("/v1/me/preferences", { bearer: token });
    assert.deepEqual(defaults.body, {
      enabled: true,
      locale: null,
      timezone: "Europe/Paris",
      quiet_hours: null,
      sources: {},
    });
    const saved = await server.request("/v1/me/preferences", {
      method: "PUT",
      bearer: token,
      body: {
        sources: { feedback: { channels: ["none"] } },
        quiet_hours: { start: "22:00", end: "07:00" },
      },
    });
    assert.equal(saved.status, 200);
    assert.deepEqual(
      (await server.request("/v1/me/preferences", { bearer: token })).body,
      saved.body,
    );

    const muted = envelope(["lucas"]); // source "feedback"
    const other = envelope(["lucas"], { metadata: { source: "activities" } });
    await server.publish(muted);
    await server.publish(other);
    // `other` is the barrier: published after `muted`, it comes after it if it comes at all.
    const frames = await client.before(isEvent(other), (f) => f.type === "event");
    assert.deepEqual(frames.map((f) => f.envelope.metadata.id), []);
    const inbox = await server.request("/v1/me/notifications", { bearer: token });
    assert.deepEqual((inbox.body.items as { id: string }[]).map((i) => i.id), [idOf(other)]);
    assert.equal(inbox.body.unread_count, 1);

    // The global switch off: nothing but critical items.
    await server.request("/v1/me/preferences", {
      method: "PUT",
      bearer: token,
      body: { enabled: false },
    });
    const quiet = envelope(["lucas"], { metadata: { source: "activities", priority: "HIGH" } });
    const critical = envelope(["lucas"], { metadata: { source: "platform", priority: "HIGH" } });
    const system = envelope(["lucas"], { metadata: { type: "SYSTEM", source: "access-control" } });
    for (const e of [quiet, critical, system]) await server.publish(e);
    // `system` is the barrier: `quiet`, published first, would come before it.
    const after = await client.before(isEvent(system), (f) => f.type === "event");
    assert.deepEqual(after.map((f) => f.envelope.metadata.id), [idOf(critical)]);
  } finally {
    await server.close();
  }
});

Deno.test("bad preferences get a 400 naming the field", async () => {
  const server = await startServer();
  try {
    const token = await server.token("lucas");
    const res = await server.request("/v1/me/preferences", {
      method: "PUT",
      bearer: token,
      body: { timezone: "Nowhere/Else", sources: { feedback: { channels: ["fax"] } } },
    });
    assert.equal(res.status, 400);
    const paths = (res.body.error as { details: { path: string }[] }).details.map((d) => d.path);
    assert.deepEqual(paths.sort(), ["sources.feedback.channels.0", "timezone"]);
    assert.equal((await server.request("/v1/me/preferences")).status, 401);
  } finally {
    await server.close();
  }
});
