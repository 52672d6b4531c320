/** The export document: valid JSON across pages, read from the store only as it is taken. */

import assert from "node:assert/strict";
import type { MemberState } from "../../src/messaging/conversation_store.ts";
import { createKvConversationStore } from "../../src/messaging/kv_conversation_store.ts";
import { createKvMailQueue } from "../../src/mail/kv_mail_queue.ts";
import { createUserExport } from "../../src/privacy/user_export.ts";
import { createKvStore } from "../../src/store/kv_store.ts";
import { publish } from "../store/contract/_harness.ts";

const member = (): MemberState => ({
  role: "member",
  since: 1,
  read: 0,
  muted: false,
  joinedAt: 0,
});

Deno.test("a user's export pages through their stream and messages, reading only as it is taken", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const store = createKvStore(kv, { recentWindowMs: 60_000 });
    const conversations = createKvConversationStore(kv);
    for (let i = 0; i < 5; i++) await publish(store, ["u", "v"]);
    await conversations.create(
      { id: "c", kind: "group", createdAt: 0, createdBy: "service:t", members: ["u", "v"] },
      { u: member(), v: member() },
    );
    const { job: _, ...state } = (await conversations.load("c"))!;
    await conversations.commit({
      state,
      batch: {
        kind: "messages",
        sends: ["u", "v", "u", "u", "v", "u"].map((from, i) => ({
          requestId: `r${i}`,
          from,
          text: `m${i}`,
        })),
        reads: [],
      },
    });
    const pages: number[] = [];
    const exporter = createUserExport({
      directory: { get: () => Promise.resolve(undefined) },
      preferences: { get: () => Promise.resolve(undefined) },
      store: {
        ...store,
        exportItems: (user, options) => {
          pages.push(options.after);
          return store.exportItems(user, options);
        },
      },
      conversations,
      mail: createKvMailQueue(kv),
      pageSize: 2,
    });

    const pieces = await exporter.exportUser("u");
    let text = "";
    while (pages.length < 1) {
      const next = await pieces.next();
      assert.equal(next.done, false);
      text += next.value;
    }
    assert.deepEqual(pages, [0], "one page read once the first items are taken");
    for await (const piece of pieces) text += piece;

    // 5 notifications and 6 message items (one per message, sent to both members).
    assert.deepEqual(pages, [0, 2, 4, 6, 8, 10]);
    const doc = JSON.parse(text);
    assert.equal(doc.stream.length, 11);
    assert.deepEqual(doc.stream.map((i: { seq: number }) => i.seq), [
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8,
      9,
      10,
      11,
    ]);
    assert.deepEqual(doc.messages.map((m: { text: string }) => m.text), ["m5", "m3", "m2", "m0"]);
    assert.deepEqual(doc.conversations.map((c: { id: string }) => c.id), ["c"]);
    assert.equal(doc.directory, null);
    assert.deepEqual(doc.push_subscriptions, []);
  } finally {
    kv.close();
  }
});
