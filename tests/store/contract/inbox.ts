/** The contract of the inbox port: pages, unread counts, read marks. */

import assert from "node:assert/strict";
import { makeEnvelope } from "../../_support/store.ts";
import { type Contract, contractTest, expiringSoon, publish } from "./_harness.ts";

/** Registers the inbox port's contract tests for one adapter. */
export function inboxStoreContract(contract: Contract): void {
  const test = (behaviour: string, fn: Parameters<typeof contractTest>[2]) =>
    contractTest(contract, behaviour, fn);

  test("keeps the inbox unread count in step with reads", async (store) => {
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await publish(store, ["u"])).metadata.id);
    await publish(store, ["u"], makeEnvelope("REALTIME"));
    const now = Date.now();
    assert.equal(await store.unreadCount("u", now), 3);
    assert.equal(await store.markRead("u", ids[1], now), true);
    assert.equal(await store.markRead("u", "missing", now), false);
    const unread = await store.listInbox("u", { limit: 10, unreadOnly: true, now });
    assert.deepEqual(unread.items.map((i) => i.id), [ids[2], ids[0]]);
    const all = await store.listInbox("u", { limit: 2, unreadOnly: false, now });
    assert.deepEqual(all.items.map((i) => i.id), [ids[2], ids[1]], "newest first, no REALTIME");
    assert.equal(all.next, all.items[1].seq);
    assert.equal(await store.markAllRead("u", now), 2);
    assert.equal(await store.unreadCount("u", now), 0);
  });

  test("pages the inbox forward from a seq, with envelopes and read times", async (store) => {
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push((await publish(store, ["u"])).metadata.id);
    await store.markRead("u", ids[1], 1234);
    await store.markRead("u", ids[1], 5678);
    const now = Date.now();
    const page = await store.listInbox("u", { after: 1, limit: 2, unreadOnly: false, now });
    assert.deepEqual(page.items.map((i) => i.id), [ids[1], ids[2]]);
    assert.equal(page.items[0].readAt, 1234, "the first read is kept");
    assert.equal(page.items[0].envelope.metadata.id, ids[1]);
    assert.equal(page.next, 3);
    assert.equal(page.unread, 3);
    const rest = await store.listInbox("u", { after: 3, limit: 2, unreadOnly: false, now });
    assert.deepEqual(rest.items.map((i) => i.id), [ids[3]]);
    assert.equal(rest.next, undefined);
    const unread = await store.listInbox("u", { after: 0, limit: 10, unreadOnly: true, now });
    assert.deepEqual(unread.items.map((i) => i.id), [ids[0], ids[2], ids[3]]);
    const empty = await store.listInbox("nobody", { limit: 10, unreadOnly: false, now });
    assert.deepEqual(empty, { items: [], unread: 0 });
  });

  test("leaves expired items out of the inbox and its unread count", async (store) => {
    const expiring = expiringSoon();
    await publish(store, ["u"], expiring);
    const kept = await publish(store, ["u"]);
    const later = Date.now() + 2_000;
    assert.equal(await store.unreadCount("u", Date.now()), 2);
    assert.equal(await store.unreadCount("u", later), 1);
    for (const unreadOnly of [false, true]) {
      const page = await store.listInbox("u", { limit: 10, unreadOnly, now: later });
      assert.deepEqual(page.items.map((i) => i.id), [kept.metadata.id]);
    }
  });

  test("lists durable SYSTEM items and leaves acked REALTIME ones out", async (store) => {
    const system = await publish(store, ["u"], makeEnvelope("SYSTEM", { ack: true }));
    const realtime = await publish(store, ["u"], makeEnvelope("REALTIME", { ack: true }));
    const now = Date.now();
    const page = await store.listInbox("u", { limit: 10, unreadOnly: false, now });
    assert.deepEqual(page.items.map((i) => i.id), [system.metadata.id]);
    assert.equal(await store.markRead("u", realtime.metadata.id, now), false);
    assert.equal(await store.markRead("u", system.metadata.id, now), true);
    assert.equal(await store.unreadCount("u", now), 0);
  });
}
