/** A collapse key replacing an item that waits for an ack, end to end over real sockets. */

import assert from "node:assert/strict";
import { envelope, eventually, SERVICE_KEY, startServer } from "../_support/server.ts";
import type { Frame } from "../_support/ws_client.ts";

const idOf = (e: Record<string, unknown>) => (e.metadata as { id: string }).id;
/** Whether `f` is the event frame of envelope `e`. */
const isEvent = (e: Record<string, unknown>) => (f: Frame) =>
  f.type === "event" && f.envelope.metadata.id === idOf(e);

Deno.test("an unacked item replaced under its collapse key is neither redelivered nor dead-lettered", async () => {
  const server = await startServer({ RELAIS_ACK_RETRY_BASE_MS: "100" });
  try {
    const { client } = await server.login("camille");
    const collapsing = (limit: number) =>
      envelope(["camille"], {
        metadata: { collapse_key: "review:7" },
        routing: { retry: { ack_required: true, limit, backoff: "FIXED" } },
      });
    // A alone would be redelivered once after 100 ms and dead-lettered 100 ms later.
    const first = collapsing(1);
    const second = collapsing(5);
    await server.publish(first);
    await client.next(isEvent(first));
    await server.publish(second);
    const update = await client.next((f) => f.type === "update" || f.type === "event");
    assert.equal(update.type, "update");
    assert.equal(update.envelope.metadata.id, idOf(second));
    assert.deepEqual(update.replaces, { id: idOf(first), seq: 1 });

    // B, unacked, comes again every 100 ms: by its third redelivery A would have been
    // resent and dead-lettered long ago.
    const resentFirst: Frame[] = [];
    for (let i = 0; i < 3; i++) {
      resentFirst.push(...await client.before(isEvent(second), isEvent(first), 3000));
    }
    assert.deepEqual(resentFirst, [], "the replaced item is not sent again");

    client.send({ type: "ack", id: idOf(second) });
    await eventually(
      async () => {
        const res = await server.request(`/v1/events/${idOf(second)}`, { apiKey: SERVICE_KEY });
        return res.body.acked === 1;
      },
      2000,
      "the ack of the newer item",
    );
    // Barrier: neither item comes again before a later one.
    const later = envelope(["camille"]);
    await server.publish(later);
    assert.deepEqual(
      await client.before(isEvent(later), (f) => isEvent(first)(f) || isEvent(second)(f)),
      [],
    );

    const dead = await server.request("/v1/admin/dead-letters", { apiKey: SERVICE_KEY });
    assert.deepEqual(dead.body.items, []);
    // The replaced event was delivered, never acked, and did not fail: it was superseded.
    const status = await server.request(`/v1/events/${idOf(first)}`, { apiKey: SERVICE_KEY });
    assert.equal(status.body.delivered, 1);
    assert.equal(status.body.acked, 0);
    assert.equal(status.body.failed, 0);
    // Nothing is left to redeliver.
    const timers = server.relais.registry.inspect("user", "camille")?.timers ?? [];
    assert.deepEqual(timers.filter((t) => t.id === "nextDue"), []);
  } finally {
    await server.close();
  }
});

Deno.test("a user back after their actor passivated is not sent the replaced item again", async () => {
  const server = await startServer({
    RELAIS_ACK_RETRY_BASE_MS: "60000",
    RELAIS_ACTOR_IDLE_MS: "100",
  });
  try {
    const first = await server.login("yanis");
    const collapsing = () =>
      envelope(["yanis"], {
        metadata: { collapse_key: "review:7" },
        routing: { retry: { ack_required: true } },
      });
    const older = collapsing();
    const newer = collapsing();
    await server.publish(older);
    await first.client.next(isEvent(older));
    await server.publish(newer);
    await first.client.next((f) => f.type === "update");
    await first.client.close();
    // The actor is gone: the next one is built from the pending acks in the store.
    await eventually(
      () => !server.relais.registry.has("user", "yanis"),
      3000,
      "the actor's passivation",
    );

    // The client saw both seqs but acked neither: the next connection gets the newer one.
    const second = await server.login("yanis", { after: 2 });
    const later = envelope(["yanis"]);
    await server.publish(later);
    const before = await second.client.before(isEvent(later), (f) => f.type === "event");
    assert.deepEqual(before.map((f) => f.envelope.metadata.id), [idOf(newer)]);
  } finally {
    await server.close();
  }
});
