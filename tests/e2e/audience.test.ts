/** Audiences end to end: the fixture directory through the API, fixture events over real sockets. */

import assert from "node:assert/strict";
import {
  envelope,
  PUBLISH_KEY,
  SERVICE_KEY,
  startServer,
  type TestServer,
} from "../_support/server.ts";
import type { TestClient } from "../_support/ws_client.ts";
import {
  FIXTURE,
  fixtureUsers,
  freshFixture,
  itemFrames,
  type LooseJson,
  putFixtureUsers,
} from "../_support/directory.ts";

const { camille, yanis, emma, helene, admin, lucas } = FIXTURE;
const everyone = [camille, yanis, emma, helene, admin, lucas];

async function withDirectory(
  run: (server: TestServer, clients: Map<string, TestClient>) => Promise<void>,
) {
  const outbox = await Deno.makeTempDir({ prefix: "relais-outbox-" });
  const server = await startServer({ RELAIS_LOW_WINDOW_MS: "50", RELAIS_OUTBOX_DIR: outbox });
  try {
    assert.deepEqual(await putFixtureUsers(server.request, SERVICE_KEY), everyone.map(() => 201));
    const clients = new Map<string, TestClient>();
    for (const id of everyone) clients.set(id, (await server.login(id)).client);
    await run(server, clients);
  } finally {
    await server.close();
    await Deno.remove(outbox, { recursive: true });
  }
}

/**
 * Who received an item frame with this id, once each. The barrier: a LOW item to everyone,
 * published after it, reaches each user after it (LOW items are never sent sooner).
 */
async function receivers(server: TestServer, clients: Map<string, TestClient>, id: string) {
  const barrier = envelope(everyone, { metadata: { priority: "LOW" } });
  assert.equal((await server.publish(barrier)).status, 202);
  const isBarrier = (f: LooseJson) =>
    itemFrames([f]).some((i) => i.envelope.metadata.id === (barrier.metadata as { id: string }).id);
  await Promise.all([...clients.values()].map((client) => client.next(isBarrier)));
  const got: string[] = [];
  for (const [user, client] of clients) {
    const matching = itemFrames(client.received).filter((f) => f.envelope.metadata.id === id);
    if (matching.length > 0) got.push(user);
    assert(matching.length <= 1, `${user} got ${id} ${matching.length} times`);
  }
  return got.sort();
}

const fixtureCases: [string, string[]][] = [
  ["ask_for_feedback", [helene]],
  ["activity_modified", [camille, yanis]],
  ["role_granted", [admin]],
  ["activity_updated_realtime", [camille, yanis, helene]],
  ["maintenance_broadcast", [helene, admin]],
];

for (const [name, expected] of fixtureCases) {
  Deno.test(`fixture event ${name} reaches exactly its audience and nobody else`, async () => {
    await withDirectory(async (server, clients) => {
      const e = await freshFixture(name);
      const res = await server.publish(e);
      assert.equal(res.status, 202);
      assert.equal(res.body.targeted, expected.length);
      assert.deepEqual(res.body.unknown_targets, []);
      assert.deepEqual(await receivers(server, clients, e.metadata.id), expected.toSorted());
    });
  });
}

Deno.test("an audience narrowed with within reaches only the matching users", async () => {
  await withDirectory(async (server, clients) => {
    const e = await freshFixture("maintenance_broadcast", (x) => {
      x.routing.audience = {
        type: "ALL",
        within: { CATEGORY: ["STUDENT"], STRUCTURE: ["univ-exemple"] },
      };
    });
    assert.equal((await server.publish(e)).status, 202);
    assert.deepEqual(
      await receivers(server, clients, e.metadata.id),
      [camille, yanis, emma].sort(),
    );
  });
});

Deno.test("unknown targets are reported in the publish answer", async () => {
  await withDirectory(async (server, clients) => {
    const e = await freshFixture("activity_modified", (x) => {
      x.routing.audience = { type: "GROUP", targets: ["master-mee-m1", "no-such-group"] };
    });
    const res = await server.publish(e);
    assert.equal(res.status, 202);
    assert.equal(res.body.targeted, 1);
    assert.deepEqual(res.body.unknown_targets, ["no-such-group"]);
    assert.deepEqual(await receivers(server, clients, e.metadata.id), [emma]);
  });
});

Deno.test("thousands of unknown user targets are counted, and the list is cut", async () => {
  const server = await startServer({ RELAIS_OUTBOX_DIR: await Deno.makeTempDir() });
  try {
    const targets = Array.from({ length: 8000 }, (_, i) => `ghost-${i}`);
    const e = await freshFixture("role_granted", (x) => {
      x.routing.audience = { type: "USER", targets };
    });
    const res = await server.publish(e);
    assert.equal(res.status, 202, JSON.stringify(res.body).slice(0, 300));
    assert.equal(res.body.targeted, 8000);
    assert.equal((res.body.unknown_targets as string[]).length, 100);
    assert.equal(res.body.unknown_count, 8000);
    const status = await server.request(`/v1/events/${e.metadata.id}`, { apiKey: SERVICE_KEY });
    assert.equal(status.body.unknown_count, 8000);
  } finally {
    await server.close();
  }
});

Deno.test("an audience over the configured maximum is refused with a clear 400", async () => {
  const server = await startServer({ RELAIS_MAX_AUDIENCE: "2" });
  try {
    await putFixtureUsers(server.request, SERVICE_KEY);
    const e = await freshFixture("activity_updated_realtime");
    const res = await server.publish(e);
    assert.equal(res.status, 400);
    const error = res.body.error as { code: string; message: string; details: { path: string }[] };
    assert.equal(error.code, "validation_failed");
    assert.match(error.message, /^Audience too large: more than 2 users, at most 2$/);
    assert.equal(error.details[0].path, "routing.audience");
    assert.equal(
      (await server.request(`/v1/events/${e.metadata.id}`, { apiKey: SERVICE_KEY })).status,
      404,
    );
  } finally {
    await server.close();
  }
});

Deno.test("the directory API stores, returns, updates and validates entries", async () => {
  const server = await startServer();
  try {
    const [user] = await fixtureUsers();
    const put = await server.request(`/v1/users/${user.id}`, {
      method: "PUT",
      apiKey: SERVICE_KEY,
      body: user,
    });
    assert.equal(put.status, 201);
    const got = await server.request(`/v1/users/${user.id}`, { apiKey: SERVICE_KEY });
    assert.equal(got.status, 200);
    assert.deepEqual(
      { ...got.body, updated_at: undefined },
      { ...user, updated_at: undefined },
    );
    const moved = { ...user, groups: ["master-mee-m1"] };
    assert.equal(
      (await server.request(`/v1/users/${user.id}`, {
        method: "PUT",
        apiKey: SERVICE_KEY,
        body: moved,
      })).status,
      200,
    );

    const bad = await server.request(`/v1/users/${user.id}`, {
      method: "PUT",
      apiKey: SERVICE_KEY,
      body: { ...user, category: "ALIEN", email: "nope" },
    });
    assert.equal(bad.status, 400);
    const paths = (bad.body.error as { details: { path: string }[] }).details.map((d) => d.path);
    assert.deepEqual(paths.sort(), ["category", "email"]);
    const mismatch = await server.request("/v1/users/someone-else", {
      method: "PUT",
      apiKey: SERVICE_KEY,
      body: user,
    });
    assert.equal(mismatch.status, 400);
    assert.equal(
      (await server.request(`/v1/users/${user.id}`, {
        method: "PUT",
        apiKey: PUBLISH_KEY,
        body: user,
      })).status,
      403,
    );
    assert.equal((await server.request("/v1/users/nobody", { apiKey: SERVICE_KEY })).status, 404);
  } finally {
    await server.close();
  }
});
