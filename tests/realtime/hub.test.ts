/** The hub's connections by user, kept as one id or a set of them. */

import assert from "node:assert/strict";
import { createHub, type Outlet } from "../../src/realtime/hub.ts";

function outlet(sent: string[]): Outlet {
  return { transport: "ws", send: (text) => void sent.push(text), close: () => {} };
}

Deno.test("the hub finds a user's one, several, then remaining connections as they come and go", () => {
  const hub = createHub();
  const sent: string[] = [];
  assert.deepEqual(hub.ofUser("ana"), []);
  hub.add("a1", "ana", outlet(sent));
  hub.add("b1", "bob", outlet(sent));
  assert.deepEqual(hub.ofUser("ana").map((c) => c.id), ["a1"]);
  hub.add("a2", "ana", outlet(sent));
  hub.add("a3", "ana", outlet(sent));
  assert.deepEqual(hub.ofUser("ana").map((c) => c.id).sort(), ["a1", "a2", "a3"]);
  hub.remove("a1");
  assert.deepEqual(hub.ofUser("ana").map((c) => c.id).sort(), ["a2", "a3"]);
  hub.remove("a3");
  assert.deepEqual(hub.ofUser("ana").map((c) => c.id), ["a2"]);
  hub.add("a4", "ana", outlet(sent));
  assert.deepEqual(hub.ofUser("ana").map((c) => c.id).sort(), ["a2", "a4"]);
  hub.remove("a2");
  hub.remove("a4");
  hub.remove("a4");
  assert.deepEqual(hub.ofUser("ana"), []);
  assert.deepEqual(hub.ofUser("bob").map((c) => c.id), ["b1"]);
  assert.equal(hub.size(), 1);
  hub.remove("b1");
  assert.deepEqual(hub.ofUser("bob"), []);
  assert.equal(hub.size(), 0);
});

Deno.test("a connection added twice under one id is forgotten by one remove", () => {
  const hub = createHub();
  const sent: string[] = [];
  hub.add("a1", "ana", outlet(sent));
  hub.add("a1", "ana", outlet(sent));
  assert.deepEqual(hub.ofUser("ana").map((c) => c.id), ["a1"]);
  hub.remove("a1");
  assert.deepEqual(hub.ofUser("ana"), []);
});
