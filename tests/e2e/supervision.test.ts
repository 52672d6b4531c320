/**
 * Supervision end to end: an actor that fails unexpectedly is stopped, logged, counted and
 * rebuilt from the store, while the server keeps serving everyone else over real sockets.
 *
 * The failures come through the adapters and effects the app is built from, as a broken
 * adapter would cause them: a conversation store whose commit answers a malformed result
 * once, and a metrics instrument that throws once inside a user actor's `sendFrame`.
 */

import assert from "node:assert/strict";
import type { Relais } from "../../src/app/app.ts";
import type { CommitOutput, ConversationStore } from "../../src/messaging/conversation_store.ts";
import { createMetrics, type Metrics } from "../../src/metrics.ts";
import { envelope, eventually, SERVICE_KEY, startServer } from "../_support/server.ts";
import type { Frame, TestClient } from "../_support/ws_client.ts";

/** Any policy, no message rate limit: these tests are about failures, not limits. */
const ENV = { RELAIS_CONVERSATION_POLICY: "any", RELAIS_RATE_MESSAGES: "off" };

interface Server {
  relais: Relais;
  login(user: string): Promise<TestClient>;
  request(
    path: string,
    init?: { method?: string; body?: unknown },
  ): Promise<{ status: number; body: Record<string, unknown> }>;
  failures(kind: string): Promise<number>;
  close(): Promise<void>;
}

/** A test server built from the KV adapters as `wrap` changes them; requests use the service key. */
async function start(
  wrap: { conversations?(store: ConversationStore): ConversationStore; metrics?: Metrics } = {},
): Promise<Server> {
  const server = await startServer(ENV, {
    adapt: (deps) => ({
      ...deps,
      ...(wrap.conversations && deps.conversations
        ? { conversations: wrap.conversations(deps.conversations) }
        : {}),
      ...(wrap.metrics ? { metrics: wrap.metrics } : {}),
    }),
  });
  return {
    relais: server.relais,
    request: (path, init = {}) => server.request(path, { ...init, apiKey: SERVICE_KEY }),
    async login(user) {
      const { client, welcome } = await server.login(user);
      assert.equal(welcome.type, "welcome", JSON.stringify(welcome));
      return client;
    },
    async failures(kind) {
      const text = await (await fetch(`${server.origin}/metrics`)).text();
      const line = new RegExp(`^relais_actor_failures_total\\{kind="${kind}"\\} (\\d+)$`, "m");
      return Number(line.exec(text)?.[1]);
    },
    close: () => server.close(),
  };
}

async function conversation(server: Server, members: string[]): Promise<string> {
  const res = await server.request("/v1/conversations", { body: { members } });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.id as string;
}

const msgOf = (conversation: string, text: string) => (f: Frame) =>
  f.type === "msg" && f.conversation === conversation && f.text === text;

const eventOf = (id: string) => (f: Frame) => f.type === "event" && f.envelope.metadata.id === id;

Deno.test("a conversation actor that fails is rebuilt from the store while the others keep serving", async () => {
  // A store adapter that answers one malformed commit result for one conversation: the
  // message is written, but applying the answer throws inside the actor.
  let poisoned: string | undefined;
  const server = await start({
    conversations: (store) => ({
      ...store,
      async commit(input) {
        const output = await store.commit(input);
        if (input.state.info.id !== poisoned) return output;
        poisoned = undefined;
        return { ...output, deliveries: null } as unknown as CommitOutput;
      },
    }),
  });
  try {
    const broken = await conversation(server, ["ana", "ben"]);
    const healthy = await conversation(server, ["carl", "dana"]);
    const [ana, ben, carl, dana] = await Promise.all(
      ["ana", "ben", "carl", "dana"].map((u) => server.login(u)),
    );
    assert.equal(await server.failures("conversation"), 0);

    poisoned = broken;
    ana.send({
      type: "msg.send",
      conversation: broken,
      text: "first",
      client_id: "ana-1",
      ref: "r1",
    });
    // The caller hears at once that its conversation failed, not after a timeout.
    const error = await ana.next((f) => f.type === "error" && f.ref === "r1", 5000);
    assert.equal(error.code, "unavailable");
    assert.equal(await server.failures("conversation"), 1);

    // The process is alive and everyone else is served: a message in another conversation,
    // an event to a member of the failed one.
    assert.equal((await server.request("/healthz")).status, 200);
    carl.send({ type: "msg.send", conversation: healthy, text: "hello", client_id: "carl-1" });
    await dana.next(msgOf(healthy, "hello"), 5000);
    const event = envelope(["ben"]);
    assert.equal((await server.request("/v1/events", { body: event })).status, 202);
    await ben.next(eventOf((event.metadata as { id: string }).id), 5000);

    // The failed conversation works again, rebuilt from the store: the message its failed
    // actor committed is there, and the next one follows it.
    ben.send({ type: "msg.send", conversation: broken, text: "second", client_id: "ben-1" });
    const [toAna, toBen] = await Promise.all([
      ana.next(msgOf(broken, "second"), 5000),
      ben.next(msgOf(broken, "second"), 5000),
    ]);
    assert.equal(toAna.seq, 2);
    assert.equal(toBen.seq, 2);
    const rebuilt = await server.request(`/v1/admin/actors/conversation/${broken}`);
    assert.equal(rebuilt.status, 200, JSON.stringify(rebuilt.body));
    assert.equal(await server.failures("conversation"), 1);
  } finally {
    await server.close();
  }
});

Deno.test("a user actor that fails is rebuilt at once for its open connection while the others keep receiving", async () => {
  // A metrics instrument that throws once, inside the user actor's `sendFrame` effect.
  const metrics = createMetrics({ defaultMetrics: false });
  const observe = metrics.latency.observe.bind(metrics.latency) as (value: number) => void;
  let armed = false;
  metrics.latency.observe = ((value: number) => {
    if (armed) {
      armed = false;
      throw new Error("Metrics backend failed");
    }
    observe(value);
  }) as typeof metrics.latency.observe;
  const server = await start({ metrics });
  try {
    const [eve, frank] = await Promise.all(["eve", "frank"].map((u) => server.login(u)));
    assert.equal(await server.failures("user"), 0);

    // An item that needs an ack goes through the machine, whose `sendFrame` breaks.
    armed = true;
    const first = envelope(["eve"], { routing: { retry: { ack_required: true } } });
    assert.equal((await server.request("/v1/events", { body: first })).status, 202);
    await eve.next(eventOf((first.metadata as { id: string }).id), 5000);
    await eventually(async () => (await server.failures("user")) === 1, 5000, "a failure");
    assert.equal(armed, false);

    // Alive, and the neighbour still receives.
    const other = envelope(["frank"]);
    assert.equal((await server.request("/v1/events", { body: other })).status, 202);
    await frank.next(eventOf((other.metadata as { id: string }).id), 5000);

    // The failed user receives again on the same connection, from an actor rebuilt from
    // the store (which still holds the unacked item, waiting for its ack).
    const next = envelope(["eve"]);
    assert.equal((await server.request("/v1/events", { body: next })).status, 202);
    await eve.next(eventOf((next.metadata as { id: string }).id), 5000);
    const actor = await server.request("/v1/admin/actors/user/eve");
    assert.equal(actor.status, 200, JSON.stringify(actor.body));
    const context = actor.body.context as { connections: object; pending: object };
    assert.equal(Object.keys(context.connections).length, 1);
    assert.equal(Object.keys(context.pending).length, 1);
    // And acks reach it.
    eve.send({ type: "ack", id: (first.metadata as { id: string }).id, ref: "a1" });
    await eventually(
      async () => {
        const again = await server.request("/v1/admin/actors/user/eve");
        return Object.keys((again.body.context as { pending: object }).pending).length === 0;
      },
      5000,
      "the ack",
    );
    assert.equal(await server.failures("user"), 1);
  } finally {
    await server.close();
  }
});
