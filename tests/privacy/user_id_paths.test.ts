/**
 * Every id a user can hold data under is one their export and erasure take: a token's
 * `sub` with a slash, spaces or 256 characters goes percent-encoded in the path, and the
 * route reads it back exactly.
 */

import assert from "node:assert/strict";
import { envelope, SERVICE_KEY, startServer, type TestServer } from "../_support/server.ts";

/** Ids the user-id rule accepts that a path could misread. */
const IDS = [
  "dept/jdoe",
  "x".repeat(256),
  "a b",
  " padded id ",
  "%2F",
  "../..",
  "élève/🎓",
];

const service = { apiKey: SERVICE_KEY };
const path = (id: string) => `/v1/users/${encodeURIComponent(id)}`;

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

async function exportOf(server: TestServer, id: string): Promise<Json> {
  const res = await server.request(`${path(id)}/export`, service);
  assert.equal(res.status, 200, `${JSON.stringify(id)}: ${JSON.stringify(res.body)}`);
  return res.body;
}

Deno.test("a user whose id has a slash, spaces or 256 characters is exported and erased", async () => {
  const server = await startServer();
  try {
    for (const id of IDS) {
      const bearer = await server.token(id);
      const prefs = await server.request("/v1/me/preferences", {
        method: "PUT",
        bearer,
        body: { enabled: false },
      });
      assert.equal(prefs.status, 200, `${JSON.stringify(id)}: ${JSON.stringify(prefs.body)}`);
      // Envelope targets are trimmed: an id with spaces around is not addressed this way.
      const addressable = id.trim() === id;
      if (addressable) {
        const published = await server.publish(envelope([id], { payload: { for: id } }));
        assert.equal(published.status, 202, JSON.stringify(published.body));
        assert.deepEqual(published.body.unknown_targets, [id]);
      }

      const exported = await exportOf(server, id);
      assert.equal(exported.user, id, "the path's id is read back exactly");
      assert.equal(exported.preferences?.enabled, false, JSON.stringify(id));
      assert.deepEqual(
        exported.stream.map((item: Json) => item.envelope?.payload),
        addressable ? [{ for: id }] : [],
      );

      const erased = await server.request(path(id), { method: "DELETE", ...service });
      assert.equal(erased.status, 200, `${JSON.stringify(id)}: ${JSON.stringify(erased.body)}`);
      const after = await exportOf(server, id);
      assert.equal(after.preferences, null);
      assert.deepEqual(after.stream, []);
    }
  } finally {
    await server.close();
  }
});

Deno.test("a directory entry and the ops lookup take a slashed id, and one over 256 characters is refused", async () => {
  const server = await startServer();
  try {
    const put = await server.request(path("dept/jdoe"), {
      method: "PUT",
      ...service,
      body: { id: "dept/jdoe", email: "jdoe@example.org", groups: ["g1"] },
    });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    const got = await server.request(path("dept/jdoe"), service);
    assert.equal(got.body.id, "dept/jdoe");
    const ops = await server.request(`/v1/admin/users/${encodeURIComponent("dept/jdoe")}`, service);
    assert.equal(ops.status, 200, JSON.stringify(ops.body));
    assert.equal((ops.body as Json).directory?.id, "dept/jdoe", JSON.stringify(ops.body));

    const tooLong = await server.request(`${path("x".repeat(257))}/export`, service);
    assert.equal(tooLong.status, 400);
    assert.deepEqual((tooLong.body.error as Json).details, [
      { path: "id", message: "expected at most 256 characters" },
    ]);
    // The credential's and the targets' rule is the same: these are nobody's ids, since
    // no path could export or erase them.
    for (const id of ["x".repeat(257), ".", ".."]) {
      const me = await server.request("/v1/me/preferences", { bearer: await server.token(id) });
      assert.equal(me.status, 401, JSON.stringify(id));
      const published = await server.publish(envelope([id]));
      assert.equal(published.status, 400, JSON.stringify(id));
      assert.equal((published.body.error as Json).details[0].path, "routing.audience.targets.0");
    }
  } finally {
    await server.close();
  }
});
