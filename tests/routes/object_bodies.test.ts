/**
 * Where a route asks for a JSON object, an array is a 400 naming the field, never read as
 * an object of its indexes nor as an empty object that resets what was stored.
 */

import assert from "node:assert/strict";
import { envelope, SERVICE_KEY, startServer } from "../_support/server.ts";

const ARRAY_ISSUE = "Invalid type: Expected Object but received Array";

function detailsOf(body: Record<string, unknown>) {
  const error = body.error as { code: string; details: { path: string; message: string }[] };
  return { code: error.code, details: error.details };
}

Deno.test("an event whose payload is an array is refused and nothing reaches the inbox", async () => {
  const server = await startServer();
  try {
    const bearer = await server.token("ana");
    const refused = await server.publish(envelope(["ana"], { payload: ["a", "b"] as never }));
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.deepEqual(detailsOf(refused.body), {
      code: "validation_failed",
      details: [{ path: "payload", message: ARRAY_ISSUE }],
    });
    const retry = await server.publish(envelope(["ana"], { routing: { retry: [] } }));
    assert.equal(retry.status, 400, JSON.stringify(retry.body));
    assert.deepEqual(detailsOf(retry.body).details, [
      { path: "routing.retry", message: ARRAY_ISSUE },
    ]);

    // The barrier: a later, valid event is the only one in the inbox.
    const later = envelope(["ana"], { payload: { n: 1 } });
    assert.equal((await server.publish(later)).status, 202);
    const inbox = await server.request("/v1/me/notifications", { bearer });
    const items = inbox.body.items as { payload: unknown }[];
    assert.deepEqual(items.map((i) => i.payload), [{ n: 1 }]);
  } finally {
    await server.close();
  }
});

Deno.test("preferences sent as an array, or with an array of sources, leave the stored ones", async () => {
  const server = await startServer();
  try {
    const bearer = await server.token("ana");
    const stored = { enabled: false, sources: { feedback: { channels: ["email"] } } };
    const put = await server.request("/v1/me/preferences", { method: "PUT", bearer, body: stored });
    assert.equal(put.status, 200, JSON.stringify(put.body));

    const whole = await server.request("/v1/me/preferences", { method: "PUT", bearer, body: [] });
    const sources = await server.request("/v1/me/preferences", {
      method: "PUT",
      bearer,
      body: { sources: [{ channels: ["email"] }] },
    });

    assert.equal(whole.status, 400, JSON.stringify(whole.body));
    assert.deepEqual(detailsOf(whole.body).details, [{ path: "$", message: ARRAY_ISSUE }]);
    assert.equal(sources.status, 400, JSON.stringify(sources.body));
    assert.deepEqual(detailsOf(sources.body).details, [{ path: "sources", message: ARRAY_ISSUE }]);
    const got = await server.request("/v1/me/preferences", { bearer });
    assert.equal(got.body.enabled, false);
    assert.deepEqual(got.body.sources, { feedback: { channels: ["email"], digest: "off" } });
  } finally {
    await server.close();
  }
});

Deno.test("a directory entry sent as an array leaves the user's memberships", async () => {
  const server = await startServer();
  try {
    const service = { apiKey: SERVICE_KEY };
    const entry = { email: "dave@example.org", groups: ["g1"], roles: ["tutor"] };
    const put = await server.request("/v1/users/dave", { method: "PUT", ...service, body: entry });
    assert.equal(put.status, 201, JSON.stringify(put.body));

    const wiped = await server.request("/v1/users/dave", { method: "PUT", ...service, body: [] });

    assert.equal(wiped.status, 400, JSON.stringify(wiped.body));
    assert.deepEqual(detailsOf(wiped.body), {
      code: "validation_failed",
      details: [{ path: "$", message: ARRAY_ISSUE }],
    });
    const got = await server.request("/v1/users/dave", service);
    assert.deepEqual([got.body.groups, got.body.roles], [["g1"], ["tutor"]]);
  } finally {
    await server.close();
  }
});
