/** End-to-end: an event's status and its idempotent replays belong to the key that published it. */

import assert from "node:assert/strict";
import * as v from "valibot";
import { EnvelopeSchema } from "../../src/schemas/envelope.ts";
import { envelope, startServer, type TestServer } from "../_support/server.ts";

const KEY_A = "test_key_of_service_a_0123456789abcdef";
const KEY_B = "test_key_of_service_b_0123456789abcdef";
const OPS_KEY = "test_key_of_ops_only_0123456789abcdef";

/** Two publishing services and an ops key that has `admin` only. */
function start(): Promise<TestServer> {
  return startServer({
    RELAIS_SERVICE_KEYS:
      `service-a:${KEY_A}:events:publish,service-b:${KEY_B}:events:publish,ops:${OPS_KEY}:admin`,
  });
}

/** Posts `body` with `key`; the answer with its `Idempotent-Replayed` header. */
async function post(server: TestServer, key: string, body: unknown) {
  const res = await fetch(`${server.origin}/v1/events`, {
    method: "POST",
    headers: { "x-api-key": key, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return {
    status: res.status,
    replayed: res.headers.get("idempotent-replayed"),
    body: await res.json(),
  };
}

const idOf = (e: Record<string, unknown>) => (e.metadata as { id: string }).id;
const status = (server: TestServer, id: string, apiKey: string) =>
  server.request(`/v1/events/${id}`, { apiKey });

Deno.test("another service key gets 404 on an event's status, as for an unknown id; admin reads it", async () => {
  const server = await start();
  try {
    const e = envelope(["camille", "lucas"], { routing: { retry: { ack_required: true } } });
    assert.equal((await post(server, KEY_A, e)).status, 202);

    const own = await status(server, idOf(e), KEY_A);
    assert.equal(own.status, 200);
    assert.deepEqual([...(own.body.pending_users as string[])].sort(), ["camille", "lucas"]);

    const other = await status(server, idOf(e), KEY_B);
    const unknownId = crypto.randomUUID();
    const unknown = await status(server, unknownId, KEY_B);
    assert.equal(other.status, 404);
    assert.equal(unknown.status, 404);
    assert.deepEqual(other.body, {
      error: { code: "not_found", message: `Unknown event "${idOf(e)}"` },
    });
    assert.deepEqual(unknown.body, {
      error: { code: "not_found", message: `Unknown event "${unknownId}"` },
    });
    assert.ok(!JSON.stringify(other.body).includes("camille"));

    const ops = await status(server, idOf(e), OPS_KEY);
    assert.equal(ops.status, 200);
    assert.deepEqual(ops.body, own.body);
  } finally {
    await server.close();
  }
});

Deno.test("a re-post of another service's id is refused with 409 and leaves the event unchanged", async () => {
  const server = await start();
  try {
    const e = envelope(["camille"]);
    const first = await post(server, KEY_A, e);
    assert.equal(first.status, 202);
    assert.equal(first.replayed, null);
    const before = await status(server, idOf(e), KEY_A);

    // One-commit path (small audience) and job path (an audience too large for one commit).
    const small = { ...envelope(["lucas"]), metadata: e.metadata };
    const large = {
      ...envelope(Array.from({ length: 120 }, (_, i) => `intruder-${i}`)),
      metadata: e.metadata,
    };
    for (const taken of [small, large]) {
      const refused = await post(server, KEY_B, taken);
      assert.equal(refused.status, 409);
      assert.equal(refused.replayed, null);
      assert.equal(refused.body.error.code, "conflict");
      assert.match(refused.body.error.message, /id is taken/);
      assert.deepEqual(refused.body.error.details, [
        { path: "metadata.id", message: "already used by another service" },
      ]);
    }

    // The same service's re-post is still a replay of the first result.
    const again = await post(server, KEY_A, e);
    assert.equal(again.status, 202);
    assert.equal(again.replayed, "true");
    assert.deepEqual(again.body, first.body);

    assert.deepEqual((await status(server, idOf(e), KEY_A)).body, before.body);
    const camille = await server.request("/v1/me/notifications", {
      bearer: await server.token("camille"),
    });
    assert.deepEqual(
      (camille.body.items as { id: string }[]).map((i) => i.id),
      [idOf(e)],
    );
    for (const user of ["lucas", "intruder-0", "intruder-119"]) {
      const inbox = await server.request("/v1/me/notifications", {
        bearer: await server.token(user),
      });
      assert.deepEqual(inbox.body.items, [], user);
    }
  } finally {
    await server.close();
  }
});

Deno.test("two service keys racing on one id: exactly one is accepted, the other gets 409", async () => {
  const server = await start();
  try {
    for (let round = 0; round < 10; round++) {
      const id = crypto.randomUUID();
      const [a, b] = await Promise.all([
        post(server, KEY_A, envelope(["camille"], { metadata: { id } })),
        post(server, KEY_B, envelope(["lucas"], { metadata: { id } })),
      ]);
      assert.deepEqual([a.status, b.status].sort(), [202, 409], `round ${round}`);
      const [winner, loser] = a.status === 202 ? [KEY_A, KEY_B] : [KEY_B, KEY_A];
      const won = await status(server, id, winner);
      assert.equal(won.status, 200);
      assert.equal(won.body.targeted, 1);
      assert.equal((await status(server, id, loser)).status, 404);
    }
  } finally {
    await server.close();
  }
});

Deno.test("an event recorded without its publisher stays readable and replayable by any publishing key", async () => {
  const server = await start();
  try {
    // Published by relais itself: the record names no service key, as records written
    // before publishers were kept.
    const raw = envelope(["camille"]);
    await server.relais.publisher.publish(v.parse(EnvelopeSchema, raw));

    assert.equal((await status(server, idOf(raw), KEY_A)).status, 200);
    assert.equal((await status(server, idOf(raw), KEY_B)).status, 200);
    const replay = await post(server, KEY_B, raw);
    assert.equal(replay.status, 202);
    assert.equal(replay.replayed, "true");
  } finally {
    await server.close();
  }
});

Deno.test("a key with neither events:publish nor admin cannot read an event's status", async () => {
  const server = await startServer({
    RELAIS_SERVICE_KEYS: `service-a:${KEY_A}:events:publish,dir:${KEY_B}:directory:write`,
  });
  try {
    const e = envelope(["camille"]);
    assert.equal((await post(server, KEY_A, e)).status, 202);
    const res = await status(server, idOf(e), KEY_B);
    assert.equal(res.status, 403);
    assert.equal((res.body.error as { code: string }).code, "forbidden");
  } finally {
    await server.close();
  }
});
