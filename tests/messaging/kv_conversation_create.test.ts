/**
 * Creating a conversation in the KV conversation store whatever its members' ids weigh,
 * on Deno KV and on the Redis KV: members too many for one commit, a creation that
 * crashes half way, and one started again.
 */

import assert from "node:assert/strict";
import type { ConversationInfo, MemberState } from "../../src/messaging/conversation_store.ts";
import { createKvConversationStore } from "../../src/messaging/kv_conversation_store.ts";
import * as keys from "../../src/store/keys.ts";
import { countingKv } from "../_support/counting_kv.ts";
import { ignoreRedis, openRedisKv } from "../_support/redis_kv.ts";

const member = (): MemberState => ({
  role: "member",
  since: 1,
  read: 0,
  muted: false,
  joinedAt: 0,
});

const infoOf = (id: string, members: string[]): ConversationInfo => ({
  id,
  kind: "group",
  createdAt: 0,
  createdBy: "service:test",
  members: [...members].sort(),
});

/** A group's id as the service makes them. */
const ID = `c_${"0".repeat(32)}`;

const statesOf = (members: string[]) => Object.fromEntries(members.map((m) => [m, member()]));

/** 400 plain ids of 64 characters, and 60 ids of 256 CJK characters (768 bytes each). */
const MEMBER_SETS: [string, string[]][] = [
  ["400 ASCII ids", Array.from({ length: 400 }, (_, i) => `user-${i}-`.padEnd(64, "x"))],
  ["60 CJK ids", Array.from({ length: 60 }, (_, i) => `${i}`.padEnd(256, "漢"))],
];

const adapters: [string, () => Promise<Deno.Kv>, boolean][] = [
  ["Deno KV", () => Deno.openKv(":memory:"), false],
  ["the Redis KV", () => Promise.resolve(openRedisKv()), ignoreRedis],
];

for (const [adapter, open, ignore] of adapters) {
  for (const [what, members] of MEMBER_SETS) {
    Deno.test({
      name: `a conversation of ${what}, too heavy for one commit, is created whole on ${adapter}`,
      ignore,
      async fn() {
        const kv = await open();
        try {
          const store = createKvConversationStore(kv);
          const created = await store.create(infoOf(ID, members), statesOf(members));
          assert.equal(created.created, true);
          const state = await store.load(ID);
          assert.ok(state);
          assert.equal(Object.keys(state.members).length, members.length);
          for (const user of [members[0], members.at(-1)!]) {
            assert.deepEqual((await store.listForUser(user)).map((l) => l.info.id), [ID]);
          }
          // Again under the same id: the first one stays, nothing is rewritten.
          const again = await store.create(infoOf(ID, members.slice(0, 2)), statesOf([]));
          assert.equal(again.created, false);
          assert.equal(again.info.members.length, members.length);
        } finally {
          kv.close();
        }
      },
    });
  }
}

Deno.test("a creation that crashes after its first commit leaves member rows that no reader shows", async () => {
  const base = await Deno.openKv(":memory:");
  try {
    const members = MEMBER_SETS[0][1];
    const { kv } = countingKv(base, (n) => {
      if (n === 1) throw new Error("crash");
    });
    const crashed = createKvConversationStore(kv);
    await assert.rejects(crashed.create(infoOf(ID, members), statesOf(members)), /crash/);
    const store = createKvConversationStore(base);
    // Some member rows were written, the conversation's own record was not.
    assert.ok((await base.get(keys.conversationMemberKey(ID, members[0]))).value);
    assert.equal(await store.info(ID), undefined);
    assert.equal(await store.load(ID), undefined);
    assert.deepEqual(await store.listForUser(members[0]), []);
    assert.deepEqual(await store.contactsOf(members[0]), []);
    // Started again, the creation completes.
    assert.equal((await store.create(infoOf(ID, members), statesOf(members))).created, true);
    assert.deepEqual((await store.listForUser(members[0])).map((l) => l.info.id), [ID]);
    assert.equal(Object.keys((await store.load(ID))!.members).length, members.length);
  } finally {
    base.close();
  }
});

Deno.test("an erasure removes the member row a crashed creation left", async () => {
  const base = await Deno.openKv(":memory:");
  try {
    const members = MEMBER_SETS[0][1];
    const { kv } = countingKv(base, (n) => {
      if (n === 1) throw new Error("crash");
    });
    await assert.rejects(
      createKvConversationStore(kv).create(infoOf(ID, members), statesOf(members)),
      /crash/,
    );
    const store = createKvConversationStore(base);
    assert.deepEqual(await store.conversationsOf(members[0]), [ID]);
    assert.equal(await store.eraseMember(ID, members[0]), false);
    assert.deepEqual(await store.conversationsOf(members[0]), []);
    assert.equal((await base.get(keys.conversationMemberKey(ID, members[0]))).value, null);
  } finally {
    base.close();
  }
});
