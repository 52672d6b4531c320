import assert from "node:assert/strict";
import type { MemberState } from "../../src/messaging/conversation_store.ts";
import { encodeMsgFrame, messageView } from "../../src/messaging/message_view.ts";
import {
  blockedEither,
  blocks,
  checkMessage,
  countsUnread,
  directId,
  isMemberState,
  own,
  receives,
  setOwn,
  sharesStructure,
} from "../../src/messaging/rules.ts";

const member = (patch: Partial<MemberState> = {}): MemberState => ({
  role: "member",
  since: 1,
  read: 0,
  muted: false,
  joinedAt: 0,
  ...patch,
});

Deno.test("the 1:1 conversation id is the same whoever starts it and differs per pair", async () => {
  assert.equal(await directId("ana", "ben"), await directId("ben", "ana"));
  assert.notEqual(await directId("ana", "ben"), await directId("ana", "chloe"));
  // The separator keeps "a"+"bc" and "ab"+"c" apart.
  assert.notEqual(await directId("a", "bc"), await directId("ab", "c"));
  assert.match(await directId("ana", "ben"), /^dm_[0-9a-f]{32}$/);
});

Deno.test("users share a structure when one of their lists overlaps", () => {
  assert.equal(sharesStructure(["univ-x", "univ-y"], ["univ-y"]), true);
  assert.equal(sharesStructure(["univ-x"], ["univ-z"]), false);
  assert.equal(sharesStructure([], ["univ-z"]), false);
});

Deno.test("a member receives changes sent since they joined, unless they blocked the author", () => {
  const blocks = { ana: ["ben"] };
  assert.equal(receives("ana", member(), blocks, { seq: 3, from: "ben" }), false);
  assert.equal(receives("ana", member(), blocks, { seq: 3, from: "chloe" }), true);
  assert.equal(receives("chloe", member({ since: 5 }), blocks, { seq: 3, from: "ana" }), false);
  assert.equal(blockedEither(blocks, "ben", "ana"), true);
  assert.equal(blockedEither(blocks, "ben", "chloe"), false);
});

Deno.test("only new messages of others after the read position count as unread", () => {
  const m = member({ read: 4 });
  assert.equal(countsUnread("ana", m, { seq: 5, from: "ben", op: "new" }), true);
  assert.equal(countsUnread("ana", m, { seq: 5, from: "ana", op: "new" }), false);
  assert.equal(countsUnread("ana", m, { seq: 4, from: "ben", op: "new" }), false);
  assert.equal(countsUnread("ana", m, { seq: 5, from: "ben", op: "edit" }), false);
});

Deno.test("a message needs text or an attachment and respects the length cap", () => {
  assert.equal(checkMessage("bonjour", undefined, 10), undefined);
  assert.equal(checkMessage("x".repeat(11), undefined, 10)?.code, "too_long");
  assert.equal(checkMessage(" \n", undefined, 10)?.code, "validation_failed");
  assert.equal(checkMessage("", [{ url: "https://e.org/a", name: "a" }], 10), undefined);
});

Deno.test("a msg frame wraps the message view with the recipient's stream position", () => {
  const view = messageView("c1", { id: "m1", seq: 2, from: "ana", text: 'hé "toi"', at: 0 });
  const frame = JSON.parse(encodeMsgFrame(JSON.stringify(view), { seq: 17, op: "edit" }));
  assert.deepEqual(frame, {
    type: "msg",
    stream_seq: 17,
    change: "edit",
    conversation: "c1",
    seq: 2,
    id: "m1",
    from: "ana",
    text: 'hé "toi"',
    at: "1970-01-01T00:00:00.000Z",
  });
  assert.deepEqual(JSON.parse(encodeMsgFrame(JSON.stringify(view))), { type: "msg", ...view });
});

Deno.test("records keyed by user answer only for their own keys, whatever the user's name", () => {
  const members: Record<string, MemberState> = { ana: member() };
  for (const name of ["constructor", "toString", "valueOf", "hasOwnProperty", "__proto__"]) {
    assert.equal(own(members, name), undefined, name);
    assert.equal(blocks({ ana: ["ben"] }, name, "ana"), false, name);
    assert.equal(blockedEither({}, name, "ana"), false, name);
  }
  setOwn(members, "__proto__", member({ role: "owner" }));
  assert.equal(Object.getPrototypeOf(members), Object.prototype, "the prototype is intact");
  assert.equal(own(members, "__proto__")?.role, "owner");
  assert.deepEqual(Object.keys(members), ["ana", "__proto__"]);
  assert.equal(blocks(JSON.parse('{"__proto__": ["ana"]}'), "__proto__", "ana"), true);
  assert.equal(isMemberState({ read: 3 }), false, "a stray read position is no member");
  assert.equal(isMemberState(member()), true);
});

Deno.test("a NUL inside a user id no longer makes two pairs share a 1:1 conversation id", async () => {
  assert.notEqual(await directId("u\u0000v", "w"), await directId("u", "v\u0000w"));
  assert.equal(await directId("u\u0000v", "w"), await directId("w", "u\u0000v"));
  // Pairs without NUL keep the id they always had: SHA-256 of both ids joined by one NUL.
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode("ana\u0000ben")),
  );
  const hex = Array.from(digest.slice(0, 16), (b) => b.toString(16).padStart(2, "0")).join("");
  assert.equal(await directId("ben", "ana"), `dm_${hex}`);
});
