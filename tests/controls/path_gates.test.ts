/** The gates of the HTTP paths end to end: what counts against the messages and connects limits. */

import assert from "node:assert/strict";
import { SERVICE_KEY, startServer } from "../_support/server.ts";

Deno.test("edits and deletes of messages count against the messages limit as sends do", async () => {
  const server = await startServer({
    RELAIS_CONVERSATION_POLICY: "any",
    RELAIS_RATE_MESSAGES: "4/24h",
  });
  try {
    const created = await server.request("/v1/conversations", {
      apiKey: SERVICE_KEY,
      body: { members: ["ana", "ben"], title: "Duo" },
    });
    const path = `/v1/conversations/${created.body.id}/messages`;
    const bearer = await server.token("ana");
    const statuses = [
      (await server.request(path, { bearer, body: { text: "one" } })).status,
      (await server.request(`${path}/1`, { method: "PATCH", bearer, body: { text: "two" } }))
        .status,
      (await server.request(`${path}/1`, { method: "PATCH", bearer, body: { text: "three" } }))
        .status,
      (await server.request(`${path}/1`, { method: "DELETE", bearer })).status,
    ];
    assert.deepEqual(statuses, [201, 200, 200, 200]);
    for (const method of ["PATCH", "DELETE"]) {
      const refused = await fetch(`${server.origin}${path}/1`, {
        method,
        headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
        body: method === "PATCH" ? JSON.stringify({ text: "again" }) : undefined,
      });
      assert.equal(refused.status, 429, method);
      assert.ok(Number(refused.headers.get("retry-after")) >= 1);
      await refused.body?.cancel();
    }
    const send = await server.request(path, { bearer, body: { text: "more" } });
    assert.equal(send.status, 429);
    // Another user's limit is their own; reading history is not counted.
    const other = await server.token("ben");
    assert.equal((await server.request(`${path}?limit=5`, { bearer: other })).status, 200);
    assert.equal((await server.request(path, { bearer: other, body: { text: "hi" } })).status, 201);
  } finally {
    await server.close();
  }
});

Deno.test("a poll that starts a session counts as a connection attempt, one that keeps its session does not", async () => {
  const server = await startServer({ RELAIS_RATE_CONNECTS: "3/24h" });
  try {
    const bearer = await server.token("ana");
    const first = await server.request("/v1/poll?timeout=0", { bearer });
    assert.equal(first.status, 200);
    const session = first.body.session as string;
    // Polls of a live session are the connection going on: never counted.
    for (let i = 0; i < 5; i++) {
      const next = await server.request(`/v1/poll?timeout=0&session=${session}`, { bearer });
      assert.equal(next.status, 200);
      assert.equal(next.body.session, session);
    }
    // A session the server does not know starts a new one: counted.
    const unknown = await server.request(
      `/v1/poll?timeout=0&session=${crypto.randomUUID()}`,
      { bearer },
    );
    assert.equal(unknown.status, 200);
    assert.equal((await server.request("/v1/poll?timeout=0", { bearer })).status, 200);
    // The fourth attempt is over the limit, with or without a session.
    const refused = await fetch(`${server.origin}/v1/poll?timeout=0`, {
      headers: { authorization: `Bearer ${bearer}` },
    });
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers.get("retry-after")) >= 1);
    await refused.body?.cancel();
    const replaced = await server.request(
      `/v1/poll?timeout=0&session=${crypto.randomUUID()}`,
      { bearer },
    );
    assert.equal(replaced.status, 429);
    // The live session keeps working.
    const live = await server.request(`/v1/poll?timeout=0&session=${session}`, { bearer });
    assert.equal(live.status, 200);
    assert.equal(live.body.session, session);
  } finally {
    await server.close();
  }
});
