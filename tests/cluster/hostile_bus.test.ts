/**
 * What a node does with what a broken or hostile writer puts on the cluster's bus: two
 * real nodes (child processes) on a real `redis-server`, the bus stream written directly
 * as `redis-cli XADD` would. Every node stays up and keeps delivering.
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { type ChildServer, spawnServer } from "../_support/process.ts";
import { skipWithoutRedis, startRedis } from "../_support/redis.ts";
import { envelope } from "../_support/server.ts";
import type { Frame } from "../_support/ws_client.ts";
import { login, publish } from "../node/_support.ts";

/** Entries as a hostile writer adds them: field/value pairs, each list one XADD. */
const HOSTILE: string[][] = [
  ["topic", "items", "from", "node-x", "data", "not json"],
  ["topic", "items", "from", "node-x", "data", "null"],
  ["topic", "items", "from", "node-x", "data", '{"kind":"items","items":[["alice",null]]}'],
  [
    "topic",
    "items",
    "from",
    "node-x",
    "data",
    '{"kind":"items","items":[["alice",{"item":{"seq":1}}]]}',
  ],
  [
    "topic",
    "items",
    "from",
    "node-x",
    "data",
    '{"kind":"items","items":[["constructor",{"item":{"seq":"x"},"frame":5}]]}',
  ],
  [
    "topic",
    "items",
    "from",
    "node-x",
    "data",
    '{"kind":"batch","batch":{"event":{},"users":["alice","constructor"],"seqs":[1,2],"item":{}},"envelope":{}}',
  ],
  ["topic", "items", "from", "node-x", "data", '{"kind":"acked","user":"constructor","id":"x"}'],
  ["topic", "items", "from", "node-x", "data", '{"kind":"acked","user":"__proto__","id":"x"}'],
  ["topic", "presence", "from", "node-x", "data", "null"],
  [
    "topic",
    "presence",
    "from",
    "node-x",
    "data",
    '{"kind":"change","online":["constructor","__proto__"],"offline":["toString"]}',
  ],
  ["topic", "presence", "data", '{"kind":"sync?"}'],
  [
    "topic",
    "user-frames",
    "from",
    "node-x",
    "data",
    '{"users":["constructor","__proto__"],"frame":7}',
  ],
  [
    "topic",
    "wake",
    "from",
    "node-x",
    "data",
    '{"kind":"mailer","id":"__proto__","event":{"type":"x"}}',
  ],
  [
    "topic",
    "wake",
    "from",
    "node-x",
    "data",
    '{"kind":"push","id":"constructor","event":{"type":"due","dueAt":"x"}}',
  ],
  [
    "topic",
    "caches.written",
    "from",
    "node-x",
    "data",
    '{"directory":[1,"constructor","__proto__"],"preferences":"x"}',
  ],
  ["topic", "controls", "from", "node-x", "data", "changed"],
  [
    "topic",
    "conversation:blocks",
    "from",
    "node-x",
    "data",
    '{"id":"__proto__","blocker":"constructor","blocked":"b","on":true}',
  ],
  ["topic", "rpc:req:node-b", "from", "node-x", "data", '{"id":"1","method":"constructor"}'],
  [
    "topic",
    "rpc:req:node-b",
    "from",
    "node-x",
    "data",
    '{"id":"2","method":"ops.connections","args":"constructor"}',
  ],
  [
    "topic",
    "rpc:req:node-b",
    "from",
    "node-x",
    "data",
    '{"id":"3","method":"conversation.submit","args":{"id":"__proto__","request":{"kind":"send"}}}',
  ],
  [
    "topic",
    "rpc:req:node-b",
    "from",
    "node-x",
    "data",
    '{"id":"4","method":"conversation.typing","args":{"id":"constructor","user":"constructor"}}',
  ],
  ["topic", "rpc:res:node-b", "from", "node-x", "data", '{"id":"__proto__","ok":true}'],
  ["topic", "__proto__", "from", "node-x", "data", "x"],
  ["from", "node-x", "data", "x"],
  ["topic", "items", "odd", "x"],
];

const isEvent = (id: string) => (f: Frame) => f.type === "event" && f.envelope.metadata.id === id;

Deno.test({
  name:
    "malformed and hostile bus messages leave both nodes up and delivering, to users named constructor too",
  ignore: skipWithoutRedis(),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const redis = await startRedis();
    const prefix = `relais-test-${crypto.randomUUID()}`;
    const env = { RELAIS_CLUSTER: "redis", REDIS_URL: redis.url, RELAIS_REDIS_PREFIX: prefix };
    const writer = new Redis(redis.url);
    const nodes: ChildServer[] = [];
    try {
      for (const node of ["node-a", "node-b"]) {
        nodes.push(await spawnServer({ ...env, RELAIS_NODE_ID: node }));
      }
      const onA = (await login(nodes[0], "constructor")).client;
      const onB = (await login(nodes[1], "constructor")).client;
      const alice = (await login(nodes[1], "alice")).client;
      const bus = `{${prefix}:cluster}:bus`;
      assert.equal(await writer.exists(bus), 1, "the nodes' bus stream");
      for (const fields of HOSTILE) await writer.call("XADD", bus, "*", ...fields);

      // Each node's next event reaches every connection, on both nodes.
      for (const from of nodes) {
        const id = await publish(from, envelope(["constructor", "alice"]));
        for (const client of [onA, onB, alice]) await client.next(isEvent(id), 10_000);
      }
      for (const node of nodes) {
        const exited = await Promise.race([node.process.status, Promise.resolve(undefined)]);
        assert.equal(exited, undefined, "the node is still up");
      }
    } finally {
      for (const node of nodes) await node.kill("SIGTERM").catch(() => {});
      writer.disconnect();
      await redis.stop();
    }
  },
});
