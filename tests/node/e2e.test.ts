/**
 * relais on Node, end to end: the Node entry point (`src/node/main.ts`, bundled) runs as
 * a child process and is reached over HTTP, WebSocket, SSE and long-polling on loopback,
 * like the Deno server in `tests/e2e`.
 */

import assert from "node:assert/strict";
import { type ChildServer, spawnServer } from "../_support/process.ts";
import { envelope, eventually, SERVICE_KEY } from "../_support/server.ts";
import { openSse } from "../_support/sse_client.ts";
import { connect } from "../_support/ws_client.ts";
import { login, publish, request, token, WITHOUT_NODE } from "./_support.ts";

/** Runs `fn` against a Node server on its own temporary data folder. */
async function withNode(
  env: Record<string, string>,
  fn: (server: ChildServer, env: Record<string, string>) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "relais-node-" });
  const full = { RELAIS_KV_PATH: `${dir}/relais.kv`, RELAIS_OUTBOX_DIR: `${dir}/outbox`, ...env };
  const server = await spawnServer(full, { runtime: "node" });
  try {
    await fn(server, full);
  } finally {
    await server.kill("SIGTERM").catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

const opts = { ignore: WITHOUT_NODE, sanitizeResources: false, sanitizeOps: false };

Deno.test({
  ...opts,
  name: "on Node a published event reaches the socket, is acked, and a resume replays exactly",
  async fn() {
    await withNode({}, async (server) => {
      const first = await login(server, "camille");
      assert.ok(first.welcome);
      assert.equal(first.client.socket.protocol, "relais.v1");
      const id = await publish(
        server,
        envelope(["camille"], { routing: { retry: { ack_required: true } } }),
      );
      const event = await first.client.next((f) => f.type === "event");
      assert.deepEqual([event.seq, event.envelope.metadata.id], [1, id]);
      assert.equal(event.envelope.routing, undefined);
      first.client.send({ type: "ack", id });
      await eventually(
        async () => {
          const status = await request(server, `/v1/events/${id}`, { apiKey: SERVICE_KEY });
          return status.body.acked === 1 && status.body.acked_all === true;
        },
        10_000,
        "the ack to count",
      );
      await first.client.close();

      const missed = [
        await publish(server, envelope(["camille"])),
        await publish(server, envelope(["camille"])),
      ];
      const again = await login(server, "camille", { after: 1, epoch: first.welcome.epoch });
      assert.ok(again.welcome);
      assert.equal(again.welcome.recovered, true);
      const replay = [];
      while (replay.length < missed.length) {
        replay.push(await again.client.next((f) => f.type === "event"));
      }
      assert.deepEqual(replay.map((f) => [f.seq, f.envelope.metadata.id]), [
        [2, missed[0]],
        [3, missed[1]],
      ]);
      // Barrier: nothing else came before the answer to a later ping.
      assert.deepEqual(await again.client.settled((f) => f.type === "event"), []);
      await again.client.close();
    });
  },
});

Deno.test({
  ...opts,
  name: "on Node the socket speaks relais.v1 whatever else the client offers first",
  async fn() {
    await withNode({}, async (server) => {
      const client = await connect(server.wsUrl, { protocols: ["other", "relais.v1"] });
      assert.equal(client.socket.protocol, "relais.v1");
      await client.close();
    });
  },
});

Deno.test({
  ...opts,
  name: "on Node SSE streams and long-polls deliver and resume",
  async fn() {
    await withNode({}, async (server) => {
      const sse = await openSse(`${server.origin}/v1/sse`, {
        authorization: `Bearer ${await token("yanis")}`,
      });
      assert.equal(sse.status, 200);
      const welcome = await sse.next();
      assert.equal(welcome.frame.type, "welcome");
      const id = await publish(server, envelope(["yanis"]));
      const event = await sse.next((e) => e.frame.type === "event");
      assert.equal(event.id, `${welcome.frame.epoch}:1`);
      assert.equal(event.frame.envelope.metadata.id, id);
      await sse.close();

      const bearer = { authorization: `Bearer ${await token("yanis")}` };
      const next = await publish(server, envelope(["yanis"]));
      const res = await fetch(
        `${server.origin}/v1/poll?after=1&epoch=${welcome.frame.epoch}&timeout=5000`,
        { headers: bearer },
      );
      assert.equal(res.status, 200);
      const batch = await res.json();
      const events = batch.frames.filter((f: { type: string }) => f.type === "event");
      assert.deepEqual(events.map((f: { seq: number }) => f.seq), [2]);
      assert.equal(events[0].envelope.metadata.id, next);
    });
  },
});

Deno.test({
  ...opts,
  name: "on Node a conversation message reaches the other member live and stays in the history",
  async fn() {
    await withNode({ RELAIS_CONVERSATION_POLICY: "any" }, async (server) => {
      const created = await request(server, "/v1/conversations", {
        apiKey: SERVICE_KEY,
        body: { members: ["ana", "ben"], title: "Relecture" },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const conversation = created.body.id as string;
      const ben = await login(server, "ben");
      assert.ok(ben.welcome);
      const ana = await login(server, "ana");
      assert.ok(ana.welcome);
      ana.client.send({ type: "msg.send", conversation, text: "bonjour", client_id: "c1" });
      const msg = await ben.client.next((f) => f.type === "msg" && f.conversation === conversation);
      assert.deepEqual([msg.seq, msg.text, msg.from], [1, "bonjour", "ana"]);
      const history = await request(server, `/v1/conversations/${conversation}/messages`, {
        user: "ben",
      });
      assert.equal(history.status, 200);
      assert.deepEqual(history.body.messages.map((m: { text: string }) => m.text), ["bonjour"]);
      await ana.client.close();
      await ben.client.close();
    });
  },
});

Deno.test({
  ...opts,
  name: "on Node a kill switch closes the sockets of its scope with 4003 and refuses new ones",
  async fn() {
    await withNode({}, async (server) => {
      const ana = await login(server, "ana");
      assert.ok(ana.welcome);
      const set = await request(server, "/v1/admin/controls", {
        method: "PUT",
        apiKey: SERVICE_KEY,
        body: { scope: { type: "USER", id: "ana" }, features: ["realtime"], reason: "Maintenance" },
      });
      assert.ok(set.status === 200 || set.status === 201, JSON.stringify(set.body));
      const closed = await ana.client.closed;
      assert.equal(closed.code, 4003);
      assert.match(closed.reason, /Maintenance/);
      assert.equal((await login(server, "ana")).closed?.code, 4003);
      const cleared = await request(server, "/v1/admin/controls/user%3Aana", {
        method: "DELETE",
        apiKey: SERVICE_KEY,
      });
      assert.equal(cleared.status, 200, JSON.stringify(cleared.body));
      const back = await login(server, "ana");
      assert.ok(back.welcome, "ana reconnects once the switch is cleared");
      await back.client.close();
    });
  },
});

Deno.test({
  ...opts,
  name: "on Node every 202ed event survives a SIGKILL and is replayed after a restart",
  async fn() {
    await withNode({}, async (server, env) => {
      const ids = await Promise.all(
        Array.from({ length: 20 }, () => publish(server, envelope(["emma"]))),
      );
      const status = await server.kill("SIGKILL");
      assert.equal(status.signal, "SIGKILL");
      const second = await spawnServer(env, { runtime: "node" });
      try {
        const emma = await login(second, "emma", { after: 0 });
        assert.ok(emma.welcome);
        assert.equal(emma.welcome.seq, ids.length);
        const got: string[] = [];
        while (got.length < ids.length) {
          got.push((await emma.client.next((f) => f.type === "event")).envelope.metadata.id);
        }
        assert.deepEqual(new Set(got), new Set(ids));
        await emma.client.close();
      } finally {
        await second.kill("SIGTERM");
      }
    });
  },
});
