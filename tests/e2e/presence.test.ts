/**
 * End-to-end: presence toggled as fast as a client can reaches its contacts paced, one
 * frame per interval at most, and the contacts always end with the user's last status.
 */

import assert from "node:assert/strict";
import { eventually, SERVICE_KEY, startServer, type TestServer } from "../_support/server.ts";
import type { TestClient } from "../_support/ws_client.ts";

const ENV = { RELAIS_CONVERSATION_POLICY: "any" };

async function group(server: TestServer, members: string[]) {
  const res = await server.request("/v1/conversations", {
    apiKey: SERVICE_KEY,
    body: { members, title: "Relecture" },
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
}

/** The statuses of `user` that `client` received, in order. */
function statusesOf(client: TestClient, user: string): string[] {
  return client.received.filter((f) => f.type === "presence" && f.user === user)
    .map((f) => f.status);
}

/** `count` statuses alternating so that the last one is `last`. */
function toggles(count: number, last: "online" | "away"): ("online" | "away")[] {
  const other = last === "online" ? "away" : "online";
  return Array.from({ length: count }, (_, i) => (count - 1 - i) % 2 === 0 ? last : other);
}

Deno.test("a burst of presence.set frames reaches a contact as a few frames ending with the last status", async () => {
  const server = await startServer(ENV);
  try {
    await group(server, ["ana", "ben"]);
    const ben = await server.login("ben");
    const ana = await server.login("ana");
    await ben.client.next((f) => f.type === "presence" && f.user === "ana");

    for (const last of ["away", "online"] as const) {
      for (const status of toggles(90, last)) ana.client.send({ type: "presence.set", status });
      await eventually(
        () => statusesOf(ben.client, "ana").at(-1) === last,
        5000,
        `ben to see ana ${last}`,
      );
    }
    // Barrier: ana's announcements go out in order, so her offline comes after all of them.
    await ana.client.close();
    await ben.client.next((f) =>
      f.type === "presence" && f.user === "ana" && f.status === "offline"
    );

    const seen = statusesOf(ben.client, "ana");
    assert.deepEqual(seen.slice(-2), ["online", "offline"]);
    // Online at login, at most two per burst (the first change, then the last), offline.
    assert.ok(
      seen.length <= 6,
      `ben got ${seen.length} presence frames, the last ${seen.slice(-3)}`,
    );
  } finally {
    await server.close();
  }
});

Deno.test("a burst of POST /v1/me/presence reaches a contact paced, ending with the last status", async () => {
  const server = await startServer(ENV);
  try {
    await group(server, ["ana", "ben"]);
    const ben = await server.login("ben");
    const ana = await server.login("ana");
    await ben.client.next((f) => f.type === "presence" && f.user === "ana");
    const bearer = await server.token("ana");

    const started = Date.now();
    const statuses = toggles(200, "away");
    const answers = await Promise.all(
      statuses.slice(0, -1).map((status) =>
        server.request("/v1/me/presence", { bearer, body: { status } })
      ),
    );
    answers.push(await server.request("/v1/me/presence", { bearer, body: { status: "away" } }));
    const elapsed = Date.now() - started;
    assert.deepEqual(answers.filter((a) => a.status !== 200), []);

    await eventually(() => statusesOf(ben.client, "ana").at(-1) === "away", 5000, "ana away");
    await ana.client.close();
    await ben.client.next((f) =>
      f.type === "presence" && f.user === "ana" && f.status === "offline"
    );

    const seen = statusesOf(ben.client, "ana");
    assert.deepEqual(seen.slice(-2), ["away", "offline"]);
    // Online at login, one per second of the burst plus its last status, offline.
    const bound = 3 + Math.ceil(elapsed / 1000);
    assert.ok(
      seen.length <= bound,
      `ben got ${seen.length} presence frames, the last ${seen.slice(-3)}`,
    );
  } finally {
    await server.close();
  }
});
