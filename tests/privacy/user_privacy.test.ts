/**
 * The right of access and the right to erasure, end to end on the Deno KV store:
 * `GET /v1/users/:id/export` holds every part of a rich user, and `DELETE /v1/users/:id`
 * leaves no key of the store naming them but what the design keeps on purpose.
 */

import assert from "node:assert/strict";
import { DELETED_USER_LABEL } from "../../src/messaging/message_view.ts";
import {
  envelope,
  eventually,
  PUBLISH_KEY,
  SERVICE_KEY,
  startServer,
  type TestServer,
} from "../_support/server.ts";

/** The user exported then erased: an id no other key part could contain by chance. */
const LEA = "léa.martin-4242";
const MAX = "max.durand";
const NOE = "noe.petit";

function entry(name: string, email: string) {
  return {
    email,
    name,
    locale: "fr",
    category: "STUDENT",
    roles: ["ROLE_STUDENT"],
    structures: ["univ-a"],
    formations: ["master-info"],
    groups: ["g-relecture"],
  };
}

/** Every key part of the store's database that is a string containing `user`. */
async function keysNaming(kv: Deno.Kv, user: string): Promise<Deno.KvKey[]> {
  const out: Deno.KvKey[] = [];
  for await (const e of kv.list({ prefix: [] })) {
    if (e.key.some((part) => typeof part === "string" && part.includes(user))) out.push(e.key);
  }
  return out;
}

/**
 * The keys naming the erased user, each checked to be of a shape kept on purpose and
 * shortened to it: `["seq", user]`, and rate windows `["rate", "<rule>:<user>", windowMs,
 * window]` without their numbers. Any other key fails the test.
 */
async function keptOnPurpose(kv: Deno.Kv): Promise<unknown[][]> {
  const out: unknown[][] = [];
  for (const key of await keysNaming(kv, LEA)) {
    if (key.length === 2 && key[0] === "seq" && key[1] === LEA) {
      out.push([...key]);
    } else if (
      key.length === 4 && key[0] === "rate" && String(key[1]).endsWith(`:${LEA}`) &&
      typeof key[2] === "number" && typeof key[3] === "number"
    ) {
      out.push(key.slice(0, 2));
    } else {
      assert.fail(`A key still names the erased user: ${JSON.stringify(key)}`);
    }
  }
  return out.sort((a, b) => JSON.stringify(a) < JSON.stringify(b) ? -1 : 1);
}

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

async function exportOf(server: TestServer, user: string): Promise<Json> {
  const res = await fetch(`${server.origin}/v1/users/${encodeURIComponent(user)}/export`, {
    headers: { "x-api-key": SERVICE_KEY },
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  return await res.json();
}

async function send(server: TestServer, bearer: string, id: string, text: string) {
  const res = await server.request(`/v1/conversations/${id}/messages`, {
    bearer,
    body: { text, client_id: crypto.randomUUID() },
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body;
}

Deno.test("a rich user's export holds every part, and their erasure leaves no key naming them", async () => {
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/relais.kv`;
  const server = await startServer({
    RELAIS_KV_PATH: kvPath,
    RELAIS_OUTBOX_DIR: `${dir}/outbox`,
    RELAIS_CONVERSATION_POLICY: "any",
  });
  const kv = await Deno.openKv(kvPath);
  try {
    // Directory entries and preferences.
    for (
      const [id, email] of [[LEA, "lea@example.org"], [MAX, "max@example.org"], [NOE, "n@x.org"]]
    ) {
      const res = await server.request(`/v1/users/${encodeURIComponent(id)}`, {
        method: "PUT",
        apiKey: SERVICE_KEY,
        body: entry(id, email),
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
    const [lea, max] = await Promise.all([LEA, MAX].map((u) => server.token(u)));
    const prefs = await server.request("/v1/me/preferences", {
      method: "PUT",
      bearer: lea,
      body: {
        sources: {
          feedback: { channels: ["inapp", "email"], digest: "off" },
          activities: { channels: ["email"], digest: "daily" },
        },
      },
    });
    assert.equal(prefs.status, 200, JSON.stringify(prefs.body));

    // Notifications: one acked, one waiting for its ack (and for its mail's grace period),
    // one that goes straight to the daily digest.
    const ackRequired = { retry: { ack_required: true }, channels: ["inapp", "email"] };
    const acked = envelope([LEA], { routing: ackRequired });
    const pending = envelope([LEA], { routing: ackRequired });
    const digested = envelope([LEA], {
      metadata: { source: "activities" },
      routing: { channels: ["inapp", "email"] },
    });
    for (const e of [acked, pending, digested]) {
      assert.equal((await server.publish(e)).status, 202);
    }
    const ackedId = (acked.metadata as Json).id;
    const pendingId = (pending.metadata as Json).id;
    const digestedId = (digested.metadata as Json).id;
    const ack = await server.request(`/v1/me/notifications/${ackedId}/ack`, {
      method: "POST",
      bearer: lea,
    });
    assert.equal(ack.status, 200, JSON.stringify(ack.body));

    // Two conversations with messages from both sides.
    const created = await server.request("/v1/conversations", {
      apiKey: SERVICE_KEY,
      body: { members: [LEA, MAX, NOE], owners: [LEA], title: "Relecture" },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const group = created.body.id as string;
    const direct = await server.request("/v1/conversations", {
      bearer: lea,
      body: { members: [MAX] },
    });
    assert.equal(direct.status, 201, JSON.stringify(direct.body));
    const pair = direct.body.id as string;
    await send(server, lea, group, "Bonjour à tous");
    await send(server, max, group, "Salut Léa");
    await send(server, lea, pair, "Une question privée");
    await send(server, max, pair, "Je t'écoute");
    const read = await server.request(`/v1/conversations/${group}/read`, { bearer: lea, body: {} });
    assert.equal(read.status, 200, JSON.stringify(read.body));

    // A block each way.
    assert.equal(
      (await server.request(`/v1/me/blocks/${NOE}`, { method: "PUT", bearer: lea })).status,
      200,
    );
    assert.equal(
      (await server.request(`/v1/me/blocks/${encodeURIComponent(LEA)}`, {
        method: "PUT",
        bearer: max,
      })).status,
      200,
    );

    // The export needs the `privacy` scope.
    const refused = await server.request(`/v1/users/${encodeURIComponent(LEA)}/export`, {
      apiKey: PUBLISH_KEY,
    });
    assert.equal(refused.status, 403);

    // The mailer folds the email-only notification into the daily digest at once.
    const doc = await eventually(
      async () => {
        const d = await exportOf(server, LEA);
        return d.mail.digest_items.length === 1 ? d : undefined;
      },
      10_000,
      "the notification to reach the digest",
    );

    assert.equal(doc.user, LEA);
    assert.equal(doc.directory.email, "lea@example.org");
    assert.deepEqual(doc.directory.groups, ["g-relecture"]);
    assert.deepEqual(doc.preferences.sources.activities, { channels: ["email"], digest: "daily" });
    // Stream: the three notifications with their envelopes' client view (no audience),
    // and the message items of both conversations.
    const byId = new Map<string, Json>(doc.stream.map((i: Json) => [i.id, i]));
    const ackedItem = byId.get(ackedId)!;
    assert.equal(ackedItem.delivery.state, "acked");
    assert.equal(ackedItem.inbox, true);
    assert.deepEqual(ackedItem.envelope.payload, acked.payload);
    assert.equal(ackedItem.envelope.routing, undefined);
    assert.equal(byId.get(pendingId)!.ack_required, true);
    assert.equal(byId.get(pendingId)!.delivery.state, "pending");
    assert.equal(byId.get(digestedId)!.quiet, true, "email only: not shown in-app");
    const messageItems = doc.stream.filter((i: Json) => i.message);
    assert.deepEqual(
      new Set(messageItems.map((i: Json) => i.message.conversation)),
      new Set([group, pair]),
    );
    assert.deepEqual(doc.pending_acks.map((p: Json) => p.id), [pendingId]);
    // Conversations and the messages the user wrote.
    const conversations = new Map<string, Json>(doc.conversations.map((c: Json) => [c.id, c]));
    assert.equal(conversations.get(group)!.kind, "group");
    assert.equal(conversations.get(group)!.title, "Relecture");
    assert.equal(conversations.get(group)!.role, "owner");
    assert.equal(conversations.get(group)!.read, 2);
    assert.equal(conversations.get(pair)!.kind, "direct");
    assert.equal(conversations.get(pair)!.role, "member");
    assert.deepEqual(
      doc.messages.map((m: Json) => [m.conversation, m.text, m.from]).sort(),
      [[group, "Bonjour à tous", LEA], [pair, "Une question privée", LEA]].sort(),
    );
    assert.deepEqual(doc.blocks, { blocked: [NOE], blocked_by: [MAX] });
    // Mail: the pending notification's task waits for its grace period; the digest's
    // task and item wait for the daily digest.
    const tasks = doc.mail.tasks.map((t: Json) => [t.kind, t.event ?? t.period]).sort();
    assert.deepEqual(tasks, [["digest", "daily"], ["item", ackedId], ["item", pendingId]].sort());
    assert.equal(doc.mail.digest_items[0].event, digestedId);
    assert.deepEqual(doc.push_subscriptions, []);

    // Someone else's export holds nothing of hers but what they share.
    const other = await exportOf(server, NOE);
    assert.deepEqual(other.blocks, { blocked: [], blocked_by: [LEA] });
    assert.deepEqual(other.messages, []);

    assert.notDeepEqual(await keysNaming(kv, LEA), [], "the user is in the store before");
    const erased = await server.request(`/v1/users/${encodeURIComponent(LEA)}`, {
      method: "DELETE",
      apiKey: SERVICE_KEY,
    });
    assert.equal(erased.status, 200, JSON.stringify(erased.body));
    assert.deepEqual(erased.body.erased, {
      directory: true,
      preferences: true,
      stream_items: doc.stream.length,
      pending_acks: 1,
      conversations: 2,
      messages_attributed: 2,
      blocks: 2,
      mail_tasks: 3,
      digest_items: 1,
      push_subscriptions: 0,
      push_tasks: 0,
    });

    // Every key of the store: what names her is kept on purpose and holds no content. The
    // stream's last seq, so that no later item reuses a position a device still holds;
    // and the rate limiter's counters of her recent requests, which expire by themselves
    // (two windows at most).
    assert.deepEqual(await keptOnPurpose(kv), [
      ["rate", `conversations:${LEA}`],
      ["rate", `messages:${LEA}`],
      ["seq", LEA],
    ]);

    // The messages she wrote stay for the others, attributed to a deleted user.
    const stored: Json[] = [];
    for (const id of [group, pair]) {
      for await (const e of kv.list<Json>({ prefix: ["msg", id] })) {
        if (e.value.from === LEA) stored.push(e.value);
      }
    }
    assert.deepEqual(stored.map((m) => [m.text, m.authorErased]).sort(), [
      ["Bonjour à tous", true],
      ["Une question privée", true],
    ]);
    const history = await server.request(`/v1/conversations/${group}/messages`, { bearer: max });
    const hers = (history.body.messages as Json[]).find((m) => m.text === "Bonjour à tous")!;
    assert.equal(hers.from, LEA);
    assert.equal(hers.from_deleted, true);
    assert.deepEqual(hers.from_label, DELETED_USER_LABEL);
    const his = (history.body.messages as Json[]).find((m) => m.text === "Salut Léa")!;
    assert.equal(his.from_deleted, undefined);
    // A replay renders them the same way.
    const { client } = await server.login(NOE, { after: 0 });
    const frame = await client.next((f) => f.type === "msg" && f.text === "Bonjour à tous");
    assert.equal(frame.from_deleted, true);

    // She left both conversations; the other member of the 1:1 conversation stays and
    // goes on writing in it.
    const groupView = await server.request(`/v1/conversations/${group}`, { bearer: max });
    assert.deepEqual(
      (groupView.body.members as Json[]).map((m: Json) => m.id).sort(),
      [MAX, NOE].sort(),
    );
    const pairView = await server.request(`/v1/conversations/${pair}`, { bearer: max });
    assert.deepEqual((pairView.body.members as Json[]).map((m: Json) => m.id), [MAX]);
    await send(server, max, pair, "Tu es là ?");
    await send(server, max, group, "Elle est partie");
    assert.deepEqual(
      (await keysNaming(kv, LEA)).filter((key) => key[0] !== "rate"),
      [["seq", LEA]],
      "nothing new names her",
    );

    // Her export is now empty but for the stream's position.
    const after = await exportOf(server, LEA);
    assert.deepEqual(
      [after.directory, after.preferences, after.stream, after.pending_acks, after.conversations],
      [null, null, [], [], []],
    );
    assert.deepEqual([after.messages, after.blocks], [[], { blocked: [], blocked_by: [] }]);
    assert.deepEqual(after.mail, { tasks: [], digest_items: [], dead_letters: [] });
  } finally {
    kv.close();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
