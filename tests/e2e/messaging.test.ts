/** User-to-user messaging end to end, over real sockets on loopback. */

import assert from "node:assert/strict";
import {
  eventually,
  PUBLISH_KEY,
  SERVICE_KEY,
  startServer,
  type TestServer,
} from "../_support/server.ts";
import type { Frame, TestClient } from "../_support/ws_client.ts";

/** Any policy, no message rate limit: these tests are about messaging itself. */
const ENV = { RELAIS_CONVERSATION_POLICY: "any", RELAIS_RATE_MESSAGES: "off" };

/** Creates a group with a service key; answers its id. */
async function group(server: TestServer, members: string[], extra: Record<string, unknown> = {}) {
  const res = await server.request("/v1/conversations", {
    apiKey: SERVICE_KEY,
    body: { members, title: "Relecture", ...extra },
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.id as string;
}

const isMsg = (conversation: string) => (f: Frame) =>
  f.type === "msg" && f.conversation === conversation;

/** Collects `count` distinct messages (by seq) of a conversation, in arrival order. */
async function messages(
  client: TestClient,
  conversation: string,
  count: number,
  timeoutMs = 10_000,
) {
  const seen = new Map<number, Frame>();
  const order: Frame[] = [];
  while (seen.size < count) {
    const frame = await client.next(isMsg(conversation), timeoutMs);
    if (seen.has(frame.seq)) continue;
    seen.set(frame.seq, frame);
    order.push(frame);
  }
  return order;
}

Deno.test("five members sending fifty messages each concurrently all see the same 250 messages in one order", async () => {
  const server = await startServer(ENV);
  try {
    const users = ["ana", "ben", "chloe", "dimitri", "emma"];
    const id = await group(server, users);
    const clients = await Promise.all(users.map(async (u) => (await server.login(u)).client));
    for (const [i, client] of clients.entries()) {
      for (let n = 0; n < 50; n++) {
        client.send({
          type: "msg.send",
          conversation: id,
          text: `${users[i]} ${n}`,
          client_id: `${users[i]}-${n}`,
        });
      }
    }
    const received = await Promise.all(clients.map((c) => messages(c, id, 250, 20_000)));
    const expected = Array.from({ length: 250 }, (_, i) => i + 1);
    for (const [i, frames] of received.entries()) {
      assert.deepEqual(frames.map((f) => f.seq), expected, `${users[i]} sees seqs 1..250 in order`);
      assert.deepEqual(
        frames.map((f) => f.client_id),
        received[0].map((f) => f.client_id),
        `${users[i]} sees the same order as ${users[0]}`,
      );
    }
    // Each sender's own messages keep the order they were sent in.
    for (const user of users) {
      const own = received[0].filter((f) => f.from === user).map((f) => f.text);
      assert.deepEqual(own, Array.from({ length: 50 }, (_, n) => `${user} ${n}`));
    }
    const history = await server.request(`/v1/conversations/${id}/messages?limit=100`, {
      bearer: await server.token("ana"),
    });
    assert.equal((history.body.messages as Frame[])[0].seq, 250);
    // No duplicate delivered either: a last message comes after every other in each
    // member's stream, and before it each member got exactly the 250 (items are not acked,
    // so never redelivered).
    clients[0].send({ type: "msg.send", conversation: id, text: "fin", client_id: "end" });
    for (const client of clients) {
      const late = await client.before((f) => isMsg(id)(f) && f.seq === 251, isMsg(id));
      assert.deepEqual(late, []);
      assert.equal(client.received.filter(isMsg(id)).length, 251);
    }
  } finally {
    await server.close();
  }
});

Deno.test("a resend with the same client_id stores one message, over WebSocket and over HTTP", async () => {
  const server = await startServer(ENV);
  try {
    const id = await group(server, ["ana", "ben"]);
    const { client } = await server.login("ana");
    client.send({ type: "msg.send", conversation: id, text: "une fois", client_id: "once" });
    const first = await client.next(isMsg(id));
    assert.equal(first.client_id, "once");
    assert.equal(first.seq, 1);
    client.send({ type: "msg.send", conversation: id, text: "une fois", client_id: "once" });
    const again = await client.next(isMsg(id));
    assert.equal(again.seq, 1, "the resend is confirmed with the stored message");
    assert.equal(again.id, first.id);

    const token = await server.token("ana");
    const body = { text: "par HTTP", client_id: "http-1" };
    const a = await server.request(`/v1/conversations/${id}/messages`, { bearer: token, body });
    const b = await server.request(`/v1/conversations/${id}/messages`, { bearer: token, body });
    assert.equal(a.status, 201);
    assert.equal(b.status, 200);
    assert.deepEqual(b.body, a.body);
    const history = await server.request(`/v1/conversations/${id}/messages`, { bearer: token });
    assert.deepEqual((history.body.messages as Frame[]).map((m) => m.seq), [2, 1]);
  } finally {
    await server.close();
  }
});

Deno.test("an offline member gets what it missed when it reconnects after its last seq", async () => {
  const server = await startServer(ENV);
  try {
    const id = await group(server, ["ana", "ben"]);
    const ben = await server.login("ben");
    const token = await server.token("ana");
    await server.request(`/v1/conversations/${id}/messages`, {
      bearer: token,
      body: { text: "1" },
    });
    const seen = await ben.client.next(isMsg(id));
    assert.equal(seen.text, "1");
    await ben.client.close();

    for (const text of ["2", "3", "4"]) {
      const res = await server.request(`/v1/conversations/${id}/messages`, {
        bearer: token,
        body: { text },
      });
      assert.equal(res.status, 201);
    }
    const again = await server.login("ben", { after: seen.stream_seq, epoch: ben.welcome.epoch });
    assert.equal(again.welcome.epoch, ben.welcome.epoch);
    assert.equal(again.welcome.recovered, true);
    const missed = await messages(again.client, id, 3);
    assert.deepEqual(missed.map((f) => f.text), ["2", "3", "4"]);
    assert.deepEqual(missed.map((f) => f.seq), [2, 3, 4]);
    const list = await server.request("/v1/me/conversations", {
      bearer: await server.token("ben"),
    });
    const [summary] = list.body.conversations as Frame[];
    assert.equal(summary.unread, 4);
    assert.equal(summary.last.preview, "4");
  } finally {
    await server.close();
  }
});

Deno.test("receipts, typing and presence reach the members and nobody else", async () => {
  const server = await startServer({ ...ENV, RELAIS_TYPING_INTERVAL_MS: "100" });
  try {
    const id = await group(server, ["ana", "ben"]);
    const ben = await server.login("ben");
    const outsider = await server.login("zoe");
    const ana = await server.login("ana");
    const online = await ben.client.next((f) => f.type === "presence" && f.user === "ana");
    assert.equal(online.status, "online");

    ana.client.send({ type: "msg.send", conversation: id, text: "tu relis ?", client_id: "r1" });
    const msg = await ben.client.next(isMsg(id));

    ben.client.send({ type: "typing", conversation: id });
    const typing = await ana.client.next((f) => f.type === "typing");
    assert.deepEqual(typing, { type: "typing", conversation: id, user: "ben" });
    // Throttled: a second typing frame at once is not broadcast again. Ben's read, sent
    // after it, reaches the conversation after it: its receipt is the barrier.
    ben.client.send({ type: "typing", conversation: id });
    ben.client.send({ type: "read", conversation: id, seq: msg.seq });
    const isReceipt = (f: Frame) => f.type === "receipt";
    assert.deepEqual(await ana.client.before(isReceipt, (f) => f.type === "typing"), []);
    const receipt = ana.client.received.findLast(isReceipt);
    assert.deepEqual(receipt, { type: "receipt", conversation: id, user: "ben", seq: 1 });

    const listed = await server.request("/v1/me/conversations", {
      bearer: await server.token("ben"),
    });
    assert.deepEqual((listed.body.conversations as Frame[])[0].presence, { ana: "online" });
    const details = await server.request(`/v1/conversations/${id}`, {
      bearer: await server.token("ben"),
    });
    assert.deepEqual(
      (details.body.members as Frame[]).map((m) => [m.id, m.presence, m.read]),
      [["ana", "online", 1], ["ben", "online", 1]],
    );

    await ana.client.close();
    const offline = await ben.client.next((f) => f.type === "presence" && f.user === "ana");
    assert.equal(offline.status, "offline");

    const leaked = outsider.client.received.filter((f) =>
      ["msg", "receipt", "typing", "presence"].includes(f.type)
    );
    assert.deepEqual(leaked, []);
  } finally {
    await server.close();
  }
});

Deno.test("a non-member can neither read nor post, over HTTP or WebSocket", async () => {
  const server = await startServer(ENV);
  try {
    const id = await group(server, ["ana", "ben"]);
    const token = await server.token("zoe");
    const read = await server.request(`/v1/conversations/${id}/messages`, { bearer: token });
    assert.equal(read.status, 403);
    assert.equal((read.body.error as Frame).code, "not_member");
    const post = await server.request(`/v1/conversations/${id}/messages`, {
      bearer: token,
      body: { text: "intrusion" },
    });
    assert.equal(post.status, 403);
    assert.equal((post.body.error as Frame).code, "not_member");
    const details = await server.request(`/v1/conversations/${id}`, { bearer: token });
    assert.equal(details.status, 403);

    const { client } = await server.login("zoe");
    client.send({
      type: "msg.send",
      conversation: id,
      text: "intrusion",
      client_id: "z",
      ref: "r1",
    });
    const error = await client.next((f) => f.type === "error");
    assert.equal(error.code, "not_member");
    assert.equal(error.ref, "r1");
    client.send({ type: "read", conversation: id, seq: 1, ref: "r2" });
    assert.equal((await client.next((f) => f.type === "error")).ref, "r2");
    client.send({ type: "msg.send", conversation: "nope", text: "x", client_id: "z2", ref: "r3" });
    const unknown = await client.next((f) => f.type === "error");
    assert.equal(unknown.code, "not_found");

    const history = await server.request(`/v1/conversations/${id}/messages`, {
      bearer: await server.token("ana"),
    });
    assert.deepEqual(history.body.messages, []);
  } finally {
    await server.close();
  }
});

Deno.test("a blocked user cannot start a conversation with the blocker nor reach them", async () => {
  const server = await startServer(ENV);
  try {
    const ana = await server.token("ana");
    const ben = await server.token("ben");
    const block = await server.request("/v1/me/blocks/ben", { method: "PUT", bearer: ana });
    assert.equal(block.status, 200);
    const start = await server.request("/v1/conversations", {
      bearer: ben,
      body: { members: ["ana"] },
    });
    assert.equal(start.status, 403);
    assert.equal((start.body.error as Frame).code, "blocked");

    // In a group the backend created, ben's messages reach chloe but never ana.
    const id = await group(server, ["ana", "ben", "chloe"]);
    const anaWs = await server.login("ana");
    const chloeWs = await server.login("chloe");
    const sent = await server.request(`/v1/conversations/${id}/messages`, {
      bearer: ben,
      body: { text: "de ben" },
    });
    assert.equal(sent.status, 201);
    await server.request(`/v1/conversations/${id}/messages`, {
      bearer: await server.token("chloe"),
      body: { text: "de chloe" },
    });
    assert.equal((await chloeWs.client.next(isMsg(id))).text, "de ben");
    // Ben's message (seq 1) would come before chloe's (seq 2) in ana's stream: chloe's is
    // the barrier, and nothing of the conversation comes before it.
    const fromChloe = (f: Frame) => isMsg(id)(f) && f.text === "de chloe";
    assert.deepEqual(await anaWs.client.before(fromChloe, isMsg(id)), []);
    const history = await server.request(`/v1/conversations/${id}/messages`, { bearer: ana });
    assert.deepEqual((history.body.messages as Frame[]).map((m) => m.from), ["chloe"]);
    const list = await server.request("/v1/me/conversations", { bearer: ana });
    assert.equal(
      (list.body.conversations as Frame[])[0].unread,
      1,
      "ben's message is not unread for ana",
    );

    // Unblocked, a 1:1 conversation works; blocked again, a send is refused.
    await server.request("/v1/me/blocks/ben", { method: "DELETE", bearer: ana });
    const dm = await server.request("/v1/conversations", {
      bearer: ben,
      body: { members: ["ana"] },
    });
    assert.equal(dm.status, 201);
    await server.request("/v1/me/blocks/ben", { method: "PUT", bearer: ana });
    const refused = await server.request(`/v1/conversations/${dm.body.id}/messages`, {
      bearer: ben,
      body: { text: "encore" },
    });
    assert.equal(refused.status, 403);
    assert.equal((refused.body.error as Frame).code, "blocked");
    const blocks = await server.request("/v1/me/blocks", { bearer: ana });
    assert.deepEqual(blocks.body.blocks, ["ben"]);

    // Presence does not cross a block either.
    await server.login("ben");
    const seen = await chloeWs.client.next((f) => f.type === "presence" && f.user === "ben");
    assert.equal(seen.status, "online");
    // Presence goes to every contact at once: by the time chloe got it, a frame to ana was
    // already on her socket, before the pong of a ping she sends now.
    assert.deepEqual(
      await anaWs.client.settled((f) => f.type === "presence" && f.user === "ben"),
      [],
    );
  } finally {
    await server.close();
  }
});

Deno.test("history pages backwards without duplicates", async () => {
  const server = await startServer(ENV);
  try {
    const id = await group(server, ["ana", "ben"]);
    const token = await server.token("ana");
    for (let i = 1; i <= 23; i++) {
      await server.request(`/v1/conversations/${id}/messages`, {
        bearer: token,
        body: { text: `m${i}` },
      });
    }
    const seqs: number[] = [];
    let before: number | undefined;
    for (let page = 0; page < 10; page++) {
      const query = before === undefined ? "?limit=10" : `?limit=10&before=${before}`;
      const res = await server.request(`/v1/conversations/${id}/messages${query}`, {
        bearer: token,
      });
      assert.equal(res.status, 200);
      seqs.push(...(res.body.messages as Frame[]).map((m) => m.seq));
      before = res.body.next as number | undefined;
      if (before === undefined) break;
    }
    assert.deepEqual(seqs, Array.from({ length: 23 }, (_, i) => 23 - i));
    const bad = await server.request(`/v1/conversations/${id}/messages?limit=0`, { bearer: token });
    assert.equal(bad.status, 400);
  } finally {
    await server.close();
  }
});

Deno.test("edits and deletes reach the other members and show in history", async () => {
  const server = await startServer(ENV);
  try {
    const id = await group(server, ["ana", "ben"]);
    const ben = await server.login("ben");
    const ana = await server.token("ana");
    const sent = await server.request(`/v1/conversations/${id}/messages`, {
      bearer: ana,
      body: {
        text: "premier jet",
        attachments: [{ url: "https://files.example.org/a.pdf", name: "a.pdf" }],
      },
    });
    await ben.client.next(isMsg(id));
    const edit = await server.request(`/v1/conversations/${id}/messages/1`, {
      method: "PATCH",
      bearer: ana,
      body: { text: "version finale" },
    });
    assert.equal(edit.status, 200);
    const edited = await ben.client.next(isMsg(id));
    assert.equal(edited.change, "edit");
    assert.equal(edited.text, "version finale");
    assert.ok(edited.edited_at);
    assert.equal(edited.id, sent.body.id);

    const notMine = await server.request(`/v1/conversations/${id}/messages/1`, {
      method: "PATCH",
      bearer: await server.token("ben"),
      body: { text: "piraté" },
    });
    assert.equal(notMine.status, 403);

    const del = await server.request(`/v1/conversations/${id}/messages/1`, {
      method: "DELETE",
      bearer: ana,
    });
    assert.equal(del.status, 200);
    const deleted = await ben.client.next(isMsg(id));
    assert.equal(deleted.change, "delete");
    assert.equal(deleted.deleted, true);
    assert.equal(deleted.text, "");
    assert.equal(deleted.attachments, undefined);

    const history = await server.request(`/v1/conversations/${id}/messages`, { bearer: ana });
    const [stored] = history.body.messages as Frame[];
    assert.equal(stored.deleted, true);
    assert.equal(stored.text, "");
    const missing = await server.request(`/v1/conversations/${id}/messages/9`, {
      method: "DELETE",
      bearer: ana,
    });
    assert.equal(missing.status, 404);
  } finally {
    await server.close();
  }
});

Deno.test("a user starts one 1:1 conversation per pair, only with someone sharing a structure", async () => {
  const server = await startServer({ RELAIS_RATE_MESSAGES: "off" });
  try {
    const ana = await server.relais.auth.signDevToken("ana", { structures: ["univ-x"] });
    const ben = await server.relais.auth.signDevToken("ben", { structures: ["univ-x", "univ-y"] });
    const zoe = await server.relais.auth.signDevToken("zoe", { structures: ["univ-z"] });
    // Users are known by the structures their credentials carried when they last acted.
    await server.request("/v1/me/conversations", { bearer: ben });
    await server.request("/v1/me/conversations", { bearer: zoe });

    const refused = await server.request("/v1/conversations", {
      bearer: ana,
      body: { members: ["zoe"] },
    });
    assert.equal(refused.status, 403);
    assert.equal((refused.body.error as Frame).code, "forbidden");
    const unknown = await server.request("/v1/conversations", {
      bearer: ana,
      body: { members: ["nobody"] },
    });
    assert.equal(unknown.status, 403);

    const first = await server.request("/v1/conversations", {
      bearer: ana,
      body: { members: ["ben"] },
    });
    assert.equal(first.status, 201);
    assert.equal(first.body.kind, "direct");
    const reverse = await server.request("/v1/conversations", {
      bearer: ben,
      body: { members: ["ana"] },
    });
    assert.equal(reverse.status, 200);
    assert.equal(reverse.body.id, first.body.id);
  } finally {
    await server.close();
  }
});

Deno.test("the backend creates a context group with a conversations:write key and manages its members", async () => {
  const server = await startServer({ ...ENV, RELAIS_MAX_CONVERSATION_MEMBERS: "3" });
  try {
    const denied = await server.request("/v1/conversations", {
      apiKey: PUBLISH_KEY,
      body: { members: ["ana", "ben"] },
    });
    assert.equal(denied.status, 403);
    const context = {
      type: "activity",
      id: "42",
      url: "https://portfolio.example.org/activities/42",
    };
    const res = await server.request("/v1/conversations", {
      apiKey: SERVICE_KEY,
      body: { members: ["ana", "ben"], owners: ["ana"], title: "Pairs", context },
    });
    assert.equal(res.status, 201);
    assert.deepEqual(res.body.context, context);
    assert.equal(res.body.kind, "group");
    const id = res.body.id as string;
    assert.deepEqual((res.body.members as Frame[]).map((m) => [m.id, m.role]), [["ana", "owner"], [
      "ben",
      "member",
    ]]);

    const ben = await server.token("ben");
    const notOwner = await server.request(`/v1/conversations/${id}/members`, {
      bearer: ben,
      body: { members: ["chloe"] },
    });
    assert.equal(notOwner.status, 403);
    const added = await server.request(`/v1/conversations/${id}/members`, {
      bearer: await server.token("ana"),
      body: { members: ["chloe"] },
    });
    assert.deepEqual(added.body.members, ["ana", "ben", "chloe"]);
    const full = await server.request(`/v1/conversations/${id}/members`, {
      apiKey: SERVICE_KEY,
      body: { members: ["dimitri"] },
    });
    assert.equal(full.status, 409);
    assert.equal((full.body.error as Frame).code, "conversation_full");

    const left = await server.request(`/v1/conversations/${id}/leave`, {
      method: "POST",
      bearer: ben,
    });
    assert.equal(left.status, 200);
    const after = await server.request(`/v1/conversations/${id}/messages`, { bearer: ben });
    assert.equal(after.status, 403);
    const removed = await server.request(`/v1/conversations/${id}/members/chloe`, {
      method: "DELETE",
      apiKey: SERVICE_KEY,
    });
    assert.deepEqual(removed.body.members, ["ana"]);
  } finally {
    await server.close();
  }
});

Deno.test("a message over the length cap is refused as too_long, and unread counts follow reads", async () => {
  const server = await startServer({ ...ENV, RELAIS_MAX_MESSAGE_LENGTH: "20" });
  try {
    const id = await group(server, ["ana", "ben"]);
    const ana = await server.token("ana");
    const ben = await server.token("ben");
    const long = await server.request(`/v1/conversations/${id}/messages`, {
      bearer: ana,
      body: { text: "x".repeat(21) },
    });
    assert.equal(long.status, 400);
    assert.equal((long.body.error as Frame).code, "too_long");
    const empty = await server.request(`/v1/conversations/${id}/messages`, {
      bearer: ana,
      body: { text: " " },
    });
    assert.equal(empty.status, 400);

    for (const text of ["a", "b", "c"]) {
      await server.request(`/v1/conversations/${id}/messages`, { bearer: ana, body: { text } });
    }
    const unreadOf = async () =>
      ((await server.request("/v1/me/conversations", { bearer: ben })).body
        .conversations as Frame[])[0]
        .unread;
    assert.equal(await unreadOf(), 3);
    const read = await server.request(`/v1/conversations/${id}/read`, {
      bearer: ben,
      body: { seq: 1 },
    });
    assert.deepEqual(read.body, { conversation: id, read: 1, unread: 2 });
    const all = await server.request(`/v1/conversations/${id}/read`, {
      method: "POST",
      bearer: ben,
    });
    assert.deepEqual(all.body, { conversation: id, read: 3, unread: 0 });
    assert.equal(await unreadOf(), 0);

    await server.request(`/v1/conversations/${id}/mute`, { method: "PUT", bearer: ben });
    await server.request(`/v1/conversations/${id}/messages`, { bearer: ana, body: { text: "d" } });
    const list = await server.request("/v1/me/conversations", { bearer: ben });
    assert.equal((list.body.conversations as Frame[])[0].muted, true);
    assert.equal((list.body.conversations as Frame[])[0].unread, 1);
    assert.equal(list.body.unread_total, 0, "muted conversations do not count in the total");
  } finally {
    await server.close();
  }
});

Deno.test("the debug endpoint shows a conversation actor's members, next seq, typing and read positions", async () => {
  const server = await startServer(ENV);
  try {
    const id = await group(server, ["ana", "ben"]);
    const { client } = await server.login("ana");
    client.send({ type: "msg.send", conversation: id, text: "hello", client_id: "1" });
    await client.next(isMsg(id));
    client.send({ type: "typing", conversation: id });
    const detail = await eventually(async () => {
      const res = await server.request(`/v1/admin/actors/conversation/${id}`, {
        apiKey: SERVICE_KEY,
      });
      return res.status === 200 &&
        Object.keys((res.body.context as Frame).typing ?? {}).length > 0 &&
        res.body;
    });
    const context = detail.context as Frame;
    assert.equal(context.head.seq, 1);
    assert.deepEqual(Object.keys(context.members).sort(), ["ana", "ben"]);
    assert.equal(context.members.ana.read, 1);
    assert.ok(context.typing.ana > 0);
    const list = await server.request("/v1/admin/actors?kind=conversation", {
      apiKey: SERVICE_KEY,
    });
    assert.equal(list.body.count, 1);
  } finally {
    await server.close();
  }
});
