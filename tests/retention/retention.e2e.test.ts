/** Retention end to end: the sweeper removes an old notification from inbox and stream. */

import assert from "node:assert/strict";
import type { RetentionStore } from "../../src/store/store.ts";
import { envelope, eventually, SERVICE_KEY, startServer } from "../_support/server.ts";

Deno.test("retention removes an old notification from inbox and stream and keeps a newer one", async () => {
  // The test decides where the cut falls, as a clock that jumped past the old item's
  // retention would: nothing goes until it is set.
  let cut = 0;
  const server = await startServer({
    RELAIS_RETENTION_ITEMS: "1d",
    RELAIS_RETENTION_SWEEP_MS: "100",
  }, {
    adapt: (deps) => {
      const sweep: RetentionStore["sweep"] = (kind, _before, options) =>
        deps.store.sweep(kind, cut, options);
      return { ...deps, store: { ...deps.store, sweep } };
    },
  });
  try {
    const bearer = await server.token("camille");
    const old = envelope(["camille"]);
    const first = await server.publish(old);
    assert.equal(first.status, 202);
    const oldAt = Date.parse(first.body.accepted_at as string);
    // The newer one must be accepted after the old one: wait for the clock to move on.
    await eventually(() => Date.now() > oldAt, 1000, "the clock to pass the old item");
    const fresh = envelope(["camille"]);
    const second = await server.publish(fresh);
    assert.equal(second.status, 202);
    const freshAt = Date.parse(second.body.accepted_at as string);
    assert.ok(freshAt > oldAt);
    const ids = (items: unknown) => (items as { id: string }[]).map((i) => i.id);
    const oldId = (old.metadata as { id: string }).id;
    const freshId = (fresh.metadata as { id: string }).id;
    const inbox = () => server.request("/v1/me/notifications", { bearer });
    assert.deepEqual(ids((await inbox()).body.items), [freshId, oldId]);

    const rounds = async () => {
      const res = await server.request("/v1/admin/actors/retention/main", { apiKey: SERVICE_KEY });
      return (res.body.context as { rounds: number }).rounds;
    };
    const before = await rounds();
    cut = freshAt;
    // Two more rounds: at least one started and ended after the cut was set.
    await eventually(async () => (await rounds()) >= before + 2, 5000, "two sweep rounds");

    const after = await inbox();
    assert.deepEqual(ids(after.body.items), [freshId], "the old one left the inbox");
    assert.equal(after.body.unread_count, 1);
    const status = await server.request(`/v1/events/${oldId}`, { apiKey: SERVICE_KEY });
    assert.equal(status.status, 404, "its event and delivery records went with it");
    const kept = await server.request(`/v1/events/${freshId}`, { apiKey: SERVICE_KEY });
    assert.equal(kept.status, 200);

    // A replay from the start of the stream holds only the newer one (in seq order: the
    // old one, at seq 1, would have come first).
    const { client, welcome } = await server.login("camille", { after: 0 });
    assert.equal(welcome.seq, 2, "the stream's last seq stays");
    const replayed = await client.next((f) => f.type === "event");
    assert.equal(replayed.envelope.metadata.id, freshId);
    assert.equal(replayed.seq, 2);

    const inspected = await server.request("/v1/admin/actors/retention/main", {
      apiKey: SERVICE_KEY,
    });
    assert.equal(inspected.status, 200);
    const context = inspected.body.context as { totals: { items?: number } };
    assert.equal(context.totals.items, 1);
    const timers = inspected.body.timers as { id: string }[] | undefined;
    assert.ok(Array.isArray(timers));
    const listed = await server.request("/v1/admin/actors?kind=retention", { apiKey: SERVICE_KEY });
    assert.equal(listed.status, 200);
  } finally {
    await server.close();
  }
});
