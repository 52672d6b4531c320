/** Erasing a user: `DELETE /v1/users/:id` removes stream, inbox, preferences, memberships, presence. */

import assert from "node:assert/strict";
import { LEASE_SIZE } from "../../src/delivery/stream_heads.ts";
import { envelope, SERVICE_KEY, startServer } from "../_support/server.ts";
import { FIXTURE, freshFixture, putFixtureUsers } from "../_support/directory.ts";

Deno.test("deleting a user erases their stream, inbox, preferences, memberships and presence", async () => {
  const server = await startServer();
  try {
    await putFixtureUsers(server.request, SERVICE_KEY);
    const user = FIXTURE.camille;
    const token = await server.token(user);
    const { client } = await server.login(user);
    await server.request("/v1/me/preferences", {
      method: "PUT",
      bearer: token,
      body: { sources: { activities: { channels: ["inapp"], digest: "daily" } } },
    });
    const acked = envelope([user], { routing: { retry: { ack_required: true } } });
    await server.publish(acked);
    await server.publish(await freshFixture("activity_modified"));
    await client.next((f) => f.type === "event");
    assert.equal(server.relais.registry.list("user").some((a) => a.id === user), true);

    const res = await server.request(`/v1/users/${user}`, {
      method: "DELETE",
      apiKey: SERVICE_KEY,
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {
      id: user,
      erased: {
        directory: true,
        preferences: true,
        stream_items: 2,
        pending_acks: 1,
        conversations: 0,
        messages_attributed: 0,
        blocks: 0,
        mail_tasks: 0,
        digest_items: 0,
        push_subscriptions: 0,
        push_tasks: 0,
      },
    });

    // Presence: the live connection is closed and the actor is gone.
    assert.equal((await client.closed).code, 4001);
    assert.equal(server.relais.registry.peek("user", user), undefined);
    // Directory and memberships: unknown, and no longer in the group's audience.
    assert.equal((await server.request(`/v1/users/${user}`, { apiKey: SERVICE_KEY })).status, 404);
    const group = await server.publish(await freshFixture("activity_modified"));
    assert.equal(group.body.targeted, 1);
    // Stream, inbox and preferences: empty and back to defaults.
    const inbox = await server.request("/v1/me/notifications", { bearer: token });
    assert.deepEqual([inbox.body.items, inbox.body.unread_count], [[], 0]);
    const prefs = await server.request("/v1/me/preferences", { bearer: token });
    assert.deepEqual(prefs.body.sources, {});
    const again = await server.login(user, { after: 0 });
    // The stream's last seq stays (the erased head's range): positions held before the
    // erasure never name a later item.
    assert.equal(again.welcome.seq, LEASE_SIZE);
    assert.deepEqual(await again.client.settled((f) => f.type === "event"), []);
    // Erasing twice is harmless.
    const twice = await server.request(`/v1/users/${user}`, {
      method: "DELETE",
      apiKey: SERVICE_KEY,
    });
    assert.deepEqual(twice.body.erased, {
      directory: false,
      preferences: false,
      stream_items: 0,
      pending_acks: 0,
      conversations: 0,
      messages_attributed: 0,
      blocks: 0,
      mail_tasks: 0,
      digest_items: 0,
      push_subscriptions: 0,
      push_tasks: 0,
    });
  } finally {
    await server.close();
  }
});
