/** The erasure ports of the Deno KV conversation store: members, authors, blocks. */

import assert from "node:assert/strict";
import {
  type Batch,
  type ConversationInfo,
  HeadConflictError,
  type MemberState,
  type MessageRecord,
} from "../../src/messaging/conversation_store.ts";
import { createKvConversationStore } from "../../src/messaging/kv_conversation_store.ts";
import * as keys from "../../src/store/keys.ts";

type KvConversationStore = ReturnType<typeof createKvConversationStore>;

const member = (): MemberState => ({
  role: "member",
  since: 1,
  read: 0,
  muted: false,
  joinedAt: 0,
});

async function withConversation(
  kind: ConversationInfo["kind"],
  members: string[],
  fn: (store: KvConversationStore, kv: Deno.Kv, id: string) => Promise<void>,
) {
  const kv = await Deno.openKv(":memory:");
  try {
    const store = createKvConversationStore(kv);
    const id = "c1";
    await store.create(
      { id, kind, createdAt: 0, createdBy: members[0], members: [...members].sort() },
      Object.fromEntries(members.map((m) => [m, member()])),
    );
    await fn(store, kv, id);
  } finally {
    kv.close();
  }
}

let request = 0;

async function sendAll(store: KvConversationStore, id: string, sends: [string, string][]) {
  const { job: _, ...state } = (await store.load(id))!;
  const batch: Batch = {
    kind: "messages",
    sends: sends.map(([from, text]) => ({
      requestId: `r${++request}`,
      from,
      text,
      clientId: `k${request}`,
    })),
    reads: [],
  };
  return await store.commit({ state, batch });
}

Deno.test("erasing a member of a 1:1 conversation keeps the other and outdates a live actor", async () => {
  await withConversation("direct", ["ana", "ben"], async (store, kv, id) => {
    await sendAll(store, id, [["ana", "salut"], ["ben", "bonjour"]]);
    const { job: _, ...before } = (await store.load(id))!;

    assert.equal(await store.eraseMember(id, "ana"), true);

    const after = (await store.load(id))!;
    assert.deepEqual(after.info.members, ["ben"]);
    assert.deepEqual(Object.keys(after.members), ["ben"]);
    assert.deepEqual(after.head, before.head, "the head is rewritten as it was");
    assert.deepEqual(await store.conversationsOf("ana"), []);
    assert.deepEqual(await store.conversationsOf("ben"), [id]);
    assert.equal((await kv.get(keys.conversationUnreadKey(id, "ana"))).versionstamp, null);
    // An actor still holding the state from before cannot write with it.
    await assert.rejects(
      store.commit({
        state: before,
        batch: { kind: "mute", requestId: "m", user: "ben", muted: true },
      }),
      HeadConflictError,
    );
    // Erasing again finds nothing to do.
    assert.equal(await store.eraseMember(id, "ana"), false);
  });
});

Deno.test("erasing a non-member removes only their stray records", async () => {
  await withConversation("group", ["ana", "ben"], async (store, kv, id) => {
    await kv.set(keys.userConversationKey("zoe", id), { at: 0 });
    await kv.set(keys.userConversationKey("zoe", "gone"), { at: 0 });
    assert.equal(await store.eraseMember(id, "zoe"), false);
    assert.equal(await store.eraseMember("gone", "zoe"), false);
    assert.deepEqual(await store.conversationsOf("zoe"), []);
    assert.deepEqual((await store.load(id))!.info.members, ["ana", "ben"]);
  });
});

Deno.test("erasing the creator of a conversation takes their id out of it, member or not", async () => {
  await withConversation("direct", ["eve", "oscar"], async (store, _kv, id) => {
    assert.equal(await store.eraseMember(id, "eve"), true);
    const info = (await store.info(id))!;
    assert.equal(info.creatorErased, true);
    assert.doesNotMatch(JSON.stringify(info), /eve/);
  });
  await withConversation("group", ["eve", "oscar", "paul"], async (store, _kv, id) => {
    // The group's creator left through its actor first, as an erasure does.
    const { job: _, ...state } = (await store.load(id))!;
    await store.commit({
      state,
      batch: { kind: "members", requestId: "r", add: [], remove: ["eve"] },
    });
    assert.equal(await store.eraseMember(id, "eve"), false);
    const info = (await store.info(id))!;
    assert.deepEqual(info.members, ["oscar", "paul"]);
    assert.equal(info.creatorErased, true);
    assert.doesNotMatch(JSON.stringify(info), /eve/);
  });
});

Deno.test("an erased author's messages stay, marked, and their client ids go", async () => {
  await withConversation("group", ["ana", "ben"], async (store, kv, id) => {
    const sends: [string, string][] = [];
    for (let i = 0; i < 120; i++) sends.push([i % 2 === 0 ? "ana" : "ben", `m${i}`]);
    await sendAll(store, id, sends);

    assert.equal(await store.markAuthorErased(id, "ana"), 60);

    const messages: MessageRecord[] = [];
    for await (const e of kv.list<MessageRecord>({ prefix: keys.messagePrefix(id) })) {
      messages.push(e.value);
    }
    assert.equal(messages.length, 120);
    for (const m of messages) {
      assert.equal(m.authorErased, m.from === "ana" ? true : undefined, `message ${m.seq}`);
      assert.equal(m.text, `m${m.seq - 1}`, "the text stays for the others");
    }
    const clientIds = async (user: string) => {
      let n = 0;
      for await (const _ of kv.list({ prefix: keys.messageClientPrefix(id, user) })) n++;
      return n;
    };
    assert.equal(await clientIds("ana"), 0);
    assert.equal(await clientIds("ben"), 60);
    assert.equal(await store.markAuthorErased(id, "ana"), 0, "already marked");
  });
});

Deno.test("forgetting a user removes their blocks both ways and nobody else's", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const store = createKvConversationStore(kv);
    await store.setBlock("ana", "ben", true, 0);
    await store.setBlock("chloe", "ana", true, 0);
    await store.setBlock("ben", "chloe", true, 0);
    await store.rememberStructures("ana", ["univ-a"]);

    await store.forgetUser("ana");

    assert.deepEqual(await store.blocksOf("ana"), []);
    assert.deepEqual(await store.blockersOf("ana"), []);
    assert.deepEqual(await store.blockersOf("ben"), []);
    assert.deepEqual(await store.blocksOf("chloe"), []);
    assert.deepEqual(await store.blocksOf("ben"), ["chloe"]);
    assert.equal(await store.structuresOf("ana"), undefined);
  } finally {
    kv.close();
  }
});
