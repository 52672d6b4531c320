/**
 * Conversations across three nodes in cluster mode on one Redis, each node on its own
 * loopback port and bus connection: a group and a 1:1 conversation whose members are
 * connected to different nodes, sending at once from every node, keep one total order
 * that every member sees; typing reaches members on the other nodes.
 */

import assert from "node:assert/strict";
import { ignoreRedis, redisUrl } from "../_support/redis_kv.ts";
import { SERVICE_KEY, startServer, type TestServer } from "../_support/server.ts";
import type { Frame, TestClient } from "../_support/ws_client.ts";

async function withNodes(run: (nodes: TestServer[]) => Promise<void>) {
  const env = {
    RELAIS_CLUSTER: "redis",
    REDIS_URL: redisUrl(),
    RELAIS_REDIS_PREFIX: `relais-test-${crypto.randomUUID()}`,
    RELAIS_CONVERSATION_POLICY: "any",
    RELAIS_RATE_MESSAGES: "off",
  };
  const nodes: TestServer[] = [];
  try {
    for (const name of ["a", "b", "c"]) {
      nodes.push(await startServer({ ...env, RELAIS_NODE_ID: `node-${name}` }));
    }
    await run(nodes);
  } finally {
    for (const node of nodes) await node.close();
  }
}

const isMsg = (conversation: string) => (f: Frame) =>
  f.type === "msg" && f.conversation === conversation;

/** The first `count` distinct messages (by seq) of a conversation, in arrival order. */
async function messages(client: TestClient, conversation: string, count: number) {
  const seen = new Set<number>();
  const order: Frame[] = [];
  while (seen.size < count) {
    const frame = await client.next(isMsg(conversation), 20_000);
    if (seen.has(frame.seq)) continue;
    seen.add(frame.seq);
    order.push(frame);
  }
  return order;
}

for (const members of [["ana", "ben", "chloe"], ["dimitri", "emma"]]) {
  Deno.test({
    name: `a conversation of ${members.length} members on different nodes keeps one order`,
    ignore: ignoreRedis,
    async fn() {
      await withNodes(async (nodes) => {
        const created = await nodes[0].request("/v1/conversations", {
          apiKey: SERVICE_KEY,
          body: members.length > 2 ? { members, title: "Relecture" } : { members },
        });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        const id = created.body.id as string;
        // Each member on their own node; each sends from there at once.
        const clients = await Promise.all(
          members.map(async (u, i) => (await nodes[i].login(u)).client),
        );
        const each = 20;
        for (const [i, client] of clients.entries()) {
          for (let n = 0; n < each; n++) {
            client.send({
              type: "msg.send",
              conversation: id,
              text: `${members[i]} ${n}`,
              client_id: `${members[i]}-${n}`,
            });
          }
        }
        const total = each * members.length;
        const received = await Promise.all(clients.map((c) => messages(c, id, total)));
        const expected = Array.from({ length: total }, (_, i) => i + 1);
        for (const [i, frames] of received.entries()) {
          assert.deepEqual(frames.map((f) => f.seq), expected, `${members[i]}: seqs`);
          assert.deepEqual(
            frames.map((f) => f.client_id),
            received[0].map((f) => f.client_id),
            `${members[i]} sees the order ${members[0]} sees`,
          );
        }
        for (const user of members) {
          const own = received[0].filter((f) => f.from === user).map((f) => f.text);
          assert.deepEqual(own, Array.from({ length: each }, (_, n) => `${user} ${n}`));
        }
        // No send was refused: every sender got an ack of each of its messages.
        for (const client of clients) {
          assert.equal(client.received.filter((f) => f.type === "error").length, 0);
        }
        // Typing on one node reaches the others' members.
        clients[1].send({ type: "typing", conversation: id });
        const typing = await clients[0].next((f) => f.type === "typing", 5000);
        assert.equal(typing.user, members[1]);
      });
    },
  });
}
