/**
 * End-to-end on the store in Redis (`RELAIS_CLUSTER=redis`): an event published to one
 * server reaches the user over WebSocket; after a restart on the same Redis prefix (and
 * an in-memory Deno KV, which keeps nothing), the stream resumes exactly from `after`.
 */

import assert from "node:assert/strict";
import { ignoreRedis, rawRedis, redisUrl } from "../_support/redis_kv.ts";
import { envelope, SERVICE_KEY, startServer } from "../_support/server.ts";

const idOf = (e: Record<string, unknown>) => (e.metadata as { id: string }).id;

Deno.test({
  name: "a server on the redis store delivers over WebSocket and resumes after a restart",
  ignore: ignoreRedis,
  async fn() {
    const prefix = `relais-test-${crypto.randomUUID()}`;
    const env = { RELAIS_CLUSTER: "redis", REDIS_URL: redisUrl(), RELAIS_REDIS_PREFIX: prefix };

    let server = await startServer(env);
    let first: Record<string, unknown>;
    let seq: number;
    try {
      const { client, welcome } = await server.login("camille", { after: 0 });
      assert.equal(welcome.type, "welcome");
      first = envelope(["camille"], { routing: { retry: { ack_required: true } } });
      assert.equal((await server.publish(first)).status, 202);
      const frame = await client.next((f) => f.type === "event");
      assert.equal(frame.envelope.metadata.id, idOf(first));
      seq = frame.seq as number;
    } finally {
      await server.close();
    }

    // What the first server wrote is in Redis, under the configured prefix.
    const redis = rawRedis();
    try {
      assert.ok(await redis.zcard(`{${prefix}:kv}:i`) > 0, "no key indexed in Redis");
    } finally {
      redis.disconnect();
    }

    server = await startServer(env);
    try {
      const second = envelope(["camille"]);
      assert.equal((await server.publish(second)).status, 202);
      const { client, welcome } = await server.login("camille", { after: seq });
      assert.equal(welcome.type, "welcome");
      // The first item after the welcome is the second event, at a later seq: the first,
      // at or before `after`, is not replayed.
      const replayed = await client.next((f) => f.type === "event");
      assert.equal(replayed.envelope.metadata.id, idOf(second));
      assert.ok((replayed.seq as number) > seq, `seq ${replayed.seq} after ${seq}`);
      // The first event, acked by nobody, is still known to the new server.
      const status = await server.request(`/v1/events/${idOf(first)}`, { apiKey: SERVICE_KEY });
      assert.equal(status.status, 200);
      assert.deepEqual(status.body.pending_users, ["camille"]);
    } finally {
      await server.close();
    }
  },
});
