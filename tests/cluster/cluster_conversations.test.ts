/**
 * Conversations across nodes, on the real conversation actors and store over one Redis:
 * one owner runs each conversation, the other nodes forward to it, and a conversation
 * whose owner died moves to another node.
 */

import assert from "node:assert/strict";
import { createRegistry } from "../../actors/registry.ts";
import type { ConversationLimits } from "../../actors/conversation.machine.ts";
import { createBusRpc } from "../../src/cluster/bus_rpc.ts";
import { createFanoutJanitor } from "../../src/cluster/fanout_janitor.ts";
import { createClusterConversations } from "../../src/cluster/cluster_conversations.ts";
import { createOwnership } from "../../src/cluster/ownership.ts";
import { createUserFrames } from "../../src/cluster/user_frames.ts";
import { AppError } from "../../src/errors.ts";
import {
  type ConversationActors,
  defineConversationActors,
} from "../../src/messaging/conversation_actors.ts";
import { createPresence } from "../../src/messaging/presence.ts";
import type {
  ConversationKind,
  MemberState,
  OpResult,
} from "../../src/messaging/conversation_store.ts";
import { createKvConversationStore } from "../../src/messaging/kv_conversation_store.ts";
import { createHub } from "../../src/realtime/hub.ts";
import * as keys from "../../src/store/keys.ts";
import type { StreamItem } from "../../src/store/store.ts";
import { eventually } from "../_support/eventually.ts";
import { ignoreRedis } from "../_support/redis_kv.ts";
import { startNodes, type TestNode } from "./_nodes.ts";

const LIMITS: ConversationLimits = {
  maxMembers: 10,
  maxMessageLength: 1000,
  typingMs: 50,
  idleMs: 60_000,
  maxBatch: 32,
};

function test(name: string, fn: () => Promise<void>) {
  Deno.test({
    name: `cluster conversations: ${name}`,
    ignore: ignoreRedis,
    sanitizeResources: false,
    sanitizeOps: false,
    fn,
  });
}

/** One relais node's messaging: its actors, store, hub, and the cluster around them. */
function messagingOf(
  node: TestNode,
  ttlMs: number,
  wrap: (local: ConversationActors) => ConversationActors = (local) => local,
) {
  const registry = createRegistry();
  const hub = createHub();
  const store = createKvConversationStore(node.kv);
  const frames = createUserFrames(node.bus, hub, { onError: node.onError });
  const local = wrap(defineConversationActors({
    registry,
    store,
    hub,
    limits: LIMITS,
    users: { deliver: () => {} },
    toUsers: frames.toUsers,
    onError: node.onError,
  }));
  const ownership = createOwnership({
    leases: node.leases,
    bus: node.bus,
    kind: "conversation",
    ttlMs,
    onError: node.onError,
  });
  const rpc = createBusRpc(node.bus, { livenessMs: 100, onError: node.onError });
  const actors = createClusterConversations({
    local,
    ownership,
    rpc,
    bus: node.bus,
    store,
    registry,
    onError: node.onError,
  });
  /** Frames this node's connection of `user` received. */
  function connect(user: string): string[] {
    const got: string[] = [];
    hub.add(`conn-${user}-${node.id}`, user, {
      transport: "ws",
      send: (text) => void got.push(text),
      close() {},
    });
    return got;
  }
  return {
    node,
    store,
    registry,
    hub,
    frames,
    ownership,
    actors,
    connect,
    async close() {
      actors.close();
      rpc.close();
      frames.close();
      registry.stopAll();
      await ownership.close();
    },
  };
}

async function cluster(
  ids: string[],
  ttlMs = 10_000,
  wrap?: (node: TestNode, local: ConversationActors) => ConversationActors,
) {
  const started = await startNodes(ids, { ttlMs, heartbeatMs: 200 });
  const nodes = started.nodes.map((n) =>
    messagingOf(n, ttlMs, wrap ? (local) => wrap(n, local) : undefined)
  );
  return {
    nodes,
    async close() {
      for (const n of nodes) await n.close();
      await started.close();
    },
  };
}

async function create(
  store: ReturnType<typeof createKvConversationStore>,
  id: string,
  members: string[],
  kind: ConversationKind = "group",
) {
  const member = (): MemberState => ({
    role: "member",
    since: 1,
    read: 0,
    muted: false,
    joinedAt: 0,
  });
  await store.create(
    { id, kind, createdAt: 0, createdBy: "service:test", members: [...members].sort() },
    Object.fromEntries(members.map((m) => [m, member()])),
  );
}

function seqOf(result: OpResult): number {
  assert.ok(result.ok && "message" in result, `a message, not ${JSON.stringify(result)}`);
  return result.message.seq;
}

const send = (from: string, text: string) => ({ kind: "send" as const, from, text });

test("two nodes sending to one conversation at once: every send succeeds, in one order of seqs", async () => {
  const { nodes: [a, b], close } = await cluster(["node-a", "node-b"]);
  try {
    await create(a.store, "c1", ["ana", "ben"]);
    const n = 25;
    const [fromA, fromB] = await Promise.all([
      Promise.all(Array.from({ length: n }, (_, i) => a.actors.submit("c1", send("ana", `a${i}`)))),
      Promise.all(Array.from({ length: n }, (_, i) => b.actors.submit("c1", send("ben", `b${i}`)))),
    ]);
    const seqsA = fromA.map(seqOf);
    const seqsB = fromB.map(seqOf);
    // One total order: every seq from 1 to 2n once, each node's sends in the order made.
    assert.deepEqual(
      [...seqsA, ...seqsB].sort((x, y) => x - y),
      Array.from({ length: 2 * n }, (_, i) => i + 1),
    );
    assert.deepEqual(seqsA, [...seqsA].sort((x, y) => x - y));
    assert.deepEqual(seqsB, [...seqsB].sort((x, y) => x - y));
    const stored = await a.store.messages("c1", Array.from({ length: 2 * n }, (_, i) => i + 1));
    assert.equal(stored.length, 2 * n);
    for (const [i, result] of [...fromA, ...fromB].entries()) {
      const message = (result as Extract<OpResult, { message: unknown }>).message;
      assert.equal(stored[message.seq - 1].text, i < n ? `a${i}` : `b${i - n}`);
    }
    // Exactly one node ran the conversation.
    assert.equal(a.ownership.held().length + b.ownership.held().length, 1);
    assert.equal((await (await a.store.head("c1"))!).seq, 2 * n);
  } finally {
    await close();
  }
});

test("a request on a node that does not own the conversation gets the owner's answer, errors included", async () => {
  const { nodes: [a, b], close } = await cluster(["node-a", "node-b"]);
  try {
    await create(a.store, "c1", ["ana", "ben"]);
    assert.equal(seqOf(await a.actors.submit("c1", send("ana", "first"))), 1);
    assert.deepEqual(a.ownership.held(), ["c1"]);

    assert.equal(seqOf(await b.actors.submit("c1", send("ben", "forwarded"))), 2);
    assert.deepEqual(b.ownership.held(), [], "node-b forwarded rather than took over");
    const read = await b.actors.submit("c1", { kind: "read", user: "ben", seq: 2 });
    assert.deepEqual(read, { ok: true, read: 2, unread: 0 });

    const refused = await b.actors.submit("c1", send("carl", "let me in"));
    assert.equal(!refused.ok && refused.error.code, "not_member");

    // A conversation node-a owns but that does not exist: node-a's not_found, as is.
    assert.deepEqual(await a.ownership.owner("nope"), { local: true });
    const missing = await b.actors.submit("nope", send("ben", "x")).catch((e) => e);
    assert.ok(missing instanceof AppError);
    assert.equal(missing.code, "not_found");
    assert.equal(missing.message, 'Unknown conversation "nope"');
  } finally {
    await close();
  }
});

test("when the owner dies, another node takes the conversation over and requests succeed", async () => {
  const ttlMs = 1_000;
  const { nodes: [a, b], close } = await cluster(["node-a", "node-b"], ttlMs);
  try {
    await create(a.store, "c1", ["ana", "ben"]);
    assert.equal(seqOf(await a.actors.submit("c1", send("ana", "before"))), 1);
    assert.equal(seqOf(await b.actors.submit("c1", send("ben", "via a"))), 2);

    // node-a dies without releasing anything; node-b still believes it owns c1.
    await a.node.die();
    const after = await b.actors.submit("c1", send("ben", "after"));
    assert.equal(seqOf(after), 3);
    assert.deepEqual(b.ownership.held(), ["c1"]);
    assert.equal((await b.node.leases.holder("conversation", "c1"))?.node, "node-b");
    assert.deepEqual(await b.actors.typing("c1", "ben"), { ok: true });
  } finally {
    await close();
  }
});

test("a send without client_id whose owner died after storing it, before answering, is stored once", async () => {
  const ttlMs = 1_000;
  // node-a stores the send, then dies before its answer leaves.
  const { nodes: [a, b], close } = await cluster(
    ["node-a", "node-b"],
    ttlMs,
    (node, local) =>
      node.id !== "node-a" ? local : {
        ...local,
        async submit(id, request, trace) {
          const result = await local.submit(id, request, trace);
          if (request.kind === "send" && request.text === "lost answer") {
            await node.die();
            return await new Promise<OpResult>(() => {});
          }
          return result;
        },
      },
  );
  try {
    await create(a.store, "c1", ["ana", "ben"]);
    assert.equal(seqOf(await a.actors.submit("c1", send("ana", "before"))), 1);
    // node-b forwards to node-a, hears nothing, waits for the lease to lapse, and runs the
    // send itself: the message node-a stored answers it.
    const result = await b.actors.submit("c1", send("ben", "lost answer"));
    assert.equal(seqOf(result), 2);
    assert.equal(result.ok && "created" in result && result.created, false);
    assert.deepEqual(b.ownership.held(), ["c1"]);
    assert.equal((await b.store.head("c1"))!.seq, 2, "stored once");
    const [stored] = await b.store.messages("c1", [2]);
    assert.equal(stored.text, "lost answer");
    assert.equal(stored.client_id, undefined, "the resend key is never shown");
  } finally {
    await close();
  }
});

test("a fan-out its dead owner left unfinished is finished by another node's janitor, unasked", async () => {
  const ttlMs = 500;
  const { nodes: [a, b], close } = await cluster(["node-a", "node-b"], ttlMs);
  const janitor = createFanoutJanitor({
    work: [{
      name: "conversation fan-outs",
      unfinished: () => b.store.unfinished(),
      resume: (ids) => b.actors.resumeUnfinished(ids),
    }],
    intervalMs: 100,
    onError: b.node.onError,
  });
  try {
    const members = ["ana", "ben", "chloe"];
    await create(a.store, "c9", members);
    assert.equal(seqOf(await a.actors.submit("c9", send("ana", "bonjour"))), 1);
    // node-a's handle closes with it: everything is read and written through node-b's.
    const kv = b.node.kv;
    const itemOf = async (user: string) => {
      for await (const e of kv.list<StreamItem>({ prefix: keys.streamPrefix(user) })) {
        if (e.value.msg?.c === "c9") return e.value;
      }
      return undefined;
    };
    // What node-a's crash between two commits of the fan-out leaves: the message and the
    // items of the members before chloe, and the job saying where it stopped.
    const item = await itemOf("chloe");
    assert.ok(item, "chloe got the message's item");
    await kv.atomic()
      .delete(keys.streamKey("chloe", item.seq))
      .set(keys.seqKey("chloe"), item.seq - 1)
      .delete(keys.conversationUnreadKey("c9", "chloe"))
      .set(keys.conversationJobKey("c9"), {
        entries: [{ seq: 1, itemId: item.id, op: "new", from: "ana" }],
        offset: 2,
      })
      .commit();
    assert.deepEqual(await b.store.unfinished(), ["c9"]);

    // node-a dies holding the conversation; nobody writes to it again.
    await a.node.die();
    await janitor.start();
    await eventually(
      async () => (await b.store.unfinished()).length === 0,
      10_000,
      "the janitor finishing the fan-out",
    );
    const resumed = await itemOf("chloe");
    assert.equal(resumed?.msg?.s, 1);
    assert.equal(resumed?.id, item.id);
    assert.equal((await b.node.leases.holder("conversation", "c9"))?.node, "node-b");
    // Members written before the crash were not written again.
    for (const user of ["ana", "ben"]) {
      let count = 0;
      for await (const e of kv.list<StreamItem>({ prefix: keys.streamPrefix(user) })) {
        if (e.value.msg?.c === "c9") count++;
      }
      assert.equal(count, 1, `${user} has the message once`);
    }
  } finally {
    janitor.stop();
    await close();
  }
});

test("typing forwarded to the owner reaches members connected to other nodes", async () => {
  const { nodes: [a, b, c], close } = await cluster(["node-a", "node-b", "node-c"]);
  try {
    await create(a.store, "c1", ["ana", "ben", "chloe"]);
    assert.equal(seqOf(await a.actors.submit("c1", send("ana", "hi"))), 1);
    const chloe = c.connect("chloe");
    const ana = a.connect("ana");
    assert.deepEqual(await b.actors.typing("c1", "ben"), { ok: true });
    const typing = JSON.stringify({ type: "typing", conversation: "c1", user: "ben" });
    await eventually(
      () => chloe.some((f) => JSON.parse(f).type === "typing"),
      5000,
      "chloe's frame",
    );
    assert.deepEqual(chloe.map((f) => JSON.parse(f)), [JSON.parse(typing)]);
    assert.deepEqual(ana.map((f) => JSON.parse(f)), [JSON.parse(typing)]);
  } finally {
    await close();
  }
});

test("a block made on one node reaches the owner's live actor before the next forwarded send", async () => {
  const { nodes: [a, b], close } = await cluster(["node-a", "node-b"]);
  try {
    await create(a.store, "d1", ["ana", "ben"], "direct");
    assert.equal(seqOf(await b.actors.submit("d1", send("ben", "hello"))), 1);
    const owner = a.ownership.held().includes("d1") ? a : b;
    const other = owner === a ? b : a;
    // ana blocks ben on the node that does not run the conversation.
    assert.ok(await other.store.setBlock("ana", "ben", true, Date.now()));
    other.actors.blockChanged("d1", "ana", "ben", true);
    const refused = await other.actors.submit("d1", send("ben", "still there?"));
    assert.equal(!refused.ok && refused.error.code, "blocked");
  } finally {
    await close();
  }
});

test("presence reaches contacts connected to another node, never across a block", async () => {
  const { nodes: [a, b], close } = await cluster(["node-a", "node-b"]);
  try {
    await create(a.store, "c1", ["ana", "ben", "chloe"]);
    assert.ok(await a.store.setBlock("chloe", "ana", true, Date.now()));
    const ben = b.connect("ben");
    const chloe = b.connect("chloe");
    const presence = createPresence({
      store: a.store,
      registry: a.registry,
      hub: a.hub,
      toUsers: a.frames.toUsers,
      // Both contacts are connected (to node b): what cluster presence would answer.
      isOnline: (user) => user === "ben" || user === "chloe",
      onError: a.node.onError,
    });
    presence.announce("ana", "online");
    await presence.idle();
    // Barrier: a frame for both, sent after the presence frame on the same bus.
    a.frames.toUsers(["ben", "chloe"], '{"type":"barrier"}');
    await eventually(() => chloe.length > 0, 5000, "chloe's barrier");
    await eventually(() => ben.length > 1, 5000, "ben's frames");
    assert.deepEqual(ben.map((f) => JSON.parse(f)), [
      { type: "presence", user: "ana", status: "online" },
      { type: "barrier" },
    ]);
    assert.deepEqual(chloe.map((f) => JSON.parse(f)), [{ type: "barrier" }]);
  } finally {
    await close();
  }
});
