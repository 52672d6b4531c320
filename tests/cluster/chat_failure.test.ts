/**
 * The node owning a conversation, in a three-node cluster, killed with SIGKILL in the
 * middle of a chat burst: another node takes the conversation over, the killed node's
 * member reconnects to another node and resumes its stream, every sender
 * sends again what it has not seen stored (same `client_id`, so nothing is stored twice),
 * and every member ends with every message exactly once, in one order shared by all.
 * Real processes, a real `redis-server`, sockets on loopback.
 */

import assert from "node:assert/strict";
import { createLeases } from "../../src/cluster/leases.ts";
import { connectRedisKv } from "../../src/store/redis_kv/redis_kv.ts";
import { eventually } from "../_support/eventually.ts";
import { type ChildServer, spawnServer } from "../_support/process.ts";
import { skipWithoutRedis, startRedis } from "../_support/redis.ts";
import { SERVICE_KEY } from "../_support/server.ts";
import type { Frame, TestClient } from "../_support/ws_client.ts";
import { login, request } from "../node/_support.ts";

const MEMBERS = ["ana", "ben", "chloe"];
const NAMES = ["a", "b", "c"];
const EACH = 20;

const isMsg = (id: string) => (f: Frame) => f.type === "msg" && f.conversation === id;

Deno.test({
  name: "SIGKILL of a node mid chat burst: every member ends with each message once, in order",
  ignore: skipWithoutRedis(),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const redis = await startRedis();
    const env = {
      RELAIS_CLUSTER: "redis",
      REDIS_URL: redis.url,
      RELAIS_REDIS_PREFIX: `relais-test-${crypto.randomUUID()}`,
      RELAIS_CONVERSATION_POLICY: "any",
      RELAIS_RATE_MESSAGES: "off",
    };
    const kv = connectRedisKv(redis.url, { prefix: `${env.RELAIS_REDIS_PREFIX}:kv` });
    // Only to read who holds the conversation's lease.
    const leases = createLeases(kv, { node: "test", ttlMs: 5_000 });
    const nodes: ChildServer[] = [];
    const clients: TestClient[] = [];
    // Every msg frame each member got, across reconnections.
    const got: Frame[][] = MEMBERS.map(() => []);
    try {
      for (const name of NAMES) {
        nodes.push(await spawnServer({ ...env, RELAIS_NODE_ID: `node-${name}` }));
      }
      const created = await request(nodes[1], "/v1/conversations", {
        apiKey: SERVICE_KEY,
        body: { members: MEMBERS, title: "Relecture" },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const id = created.body.id as string;
      const epochs: string[] = [];
      for (const [i, user] of MEMBERS.entries()) {
        const { client, welcome } = await login(nodes[i], user);
        assert.ok(welcome, `${user} was not welcomed`);
        clients.push(client);
        epochs.push(welcome.epoch);
      }
      const send = (i: number, n: number) =>
        clients[i].send({
          type: "msg.send",
          conversation: id,
          text: `${MEMBERS[i]} ${n}`,
          client_id: `${MEMBERS[i]}-${n}`,
        });
      // The first message makes a node the conversation's owner: that node is killed
      // while the others still arrive.
      send(0, 0);
      await clients[0].next((f) => isMsg(id)(f) && f.client_id === "ana-0", 10_000);
      const holder = await leases.holder("conversation", id);
      const k = NAMES.findIndex((name) => holder?.node === `node-${name}`);
      assert.ok(k >= 0, `no live owner of the conversation: ${JSON.stringify(holder)}`);
      for (let n = 0; n < EACH; n++) {
        for (let i = 0; i < MEMBERS.length; i++) if (i !== 0 || n > 0) send(i, n);
      }
      await nodes[k].kill("SIGKILL");

      // The killed node's member reconnects to another node and resumes their stream.
      await clients[k].closed;
      got[k].push(...clients[k].received.filter(isMsg(id)));
      const after = Math.max(0, ...got[k].map((f) => f.stream_seq ?? 0));
      const again = await login(nodes[(k + 1) % 3], MEMBERS[k], { after, epoch: epochs[k] });
      assert.ok(again.welcome, `${MEMBERS[k]} was not welcomed again`);
      clients[k] = again.client;

      // Each sender sends again every message it has not seen stored (a resend of a stored
      // one answers with it: nothing is stored twice).
      const seen = (i: number) =>
        new Set(clients[i].received.filter(isMsg(id)).map((f) => f.client_id));
      for (let i = 0; i < MEMBERS.length; i++) {
        const mine = new Set([...seen(i), ...got[i].map((f) => f.client_id)]);
        for (let n = 0; n < EACH; n++) if (!mine.has(`${MEMBERS[i]}-${n}`)) send(i, n);
      }
      // A last message, sent once each sender saw all of its own stored, comes after all.
      const total = EACH * MEMBERS.length;
      for (let i = 0; i < MEMBERS.length; i++) {
        const own = () =>
          new Set(
            [...got[i], ...clients[i].received].filter(isMsg(id))
              .map((f) => f.client_id).filter((c) => c?.startsWith(`${MEMBERS[i]}-`)),
          ).size;
        await eventually(() => own() === EACH, 20_000, `${MEMBERS[i]}'s messages stored`);
      }
      clients[2].send({ type: "msg.send", conversation: id, text: "fin", client_id: "end" });
      for (const [i, client] of clients.entries()) {
        await client.next((f) => isMsg(id)(f) && f.client_id === "end", 20_000);
        got[i].push(...client.received.filter(isMsg(id)));
      }

      // Every member: each message once (stream positions never repeat), the same order.
      const orders = got.map((frames) => {
        const bySeq = new Map<number, Frame>();
        for (const f of frames) if (!f.change) bySeq.set(f.seq, f);
        return [...bySeq.values()].sort((x, y) => x.seq - y.seq);
      });
      for (const [i, order] of orders.entries()) {
        assert.deepEqual(
          order.map((f) => f.seq),
          Array.from({ length: total + 1 }, (_, k) => k + 1),
          `${MEMBERS[i]}: message seqs`,
        );
        assert.deepEqual(
          order.map((f) => f.client_id),
          orders[1].map((f) => f.client_id),
          `${MEMBERS[i]} sees ${MEMBERS[1]}'s order`,
        );
        const positions = got[i].filter((f) => !f.change && f.stream_seq !== undefined)
          .map((f) => f.stream_seq as number);
        assert.equal(new Set(positions).size, positions.length, `${MEMBERS[i]}: a repeat`);
      }
      // Each sender's messages in the order it sent them.
      for (const user of MEMBERS) {
        const own = orders[1].filter((f) => f.from === user && f.client_id !== "end")
          .map((f) => f.text);
        assert.deepEqual(own, Array.from({ length: EACH }, (_, n) => `${user} ${n}`));
      }
    } finally {
      await Promise.all(clients.map((c) => c.close().catch(() => {})));
      for (const node of nodes) await node.kill("SIGTERM").catch(() => {});
      kv.close();
      await redis.stop();
    }
  },
});
