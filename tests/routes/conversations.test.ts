/** The conversation routes end to end: creating, reopening and reading conversations. */

import assert from "node:assert/strict";
import { SERVICE_KEY, startServer, type TestServer } from "../_support/server.ts";

/** Any policy, no message rate limit: these tests are about the conversations themselves. */
const ENV = { RELAIS_CONVERSATION_POLICY: "any", RELAIS_RATE_MESSAGES: "off" };

/** Creates a conversation with the service key; answers the response. */
function serviceCreate(server: TestServer, body: Record<string, unknown>) {
  return server.request("/v1/conversations", { apiKey: SERVICE_KEY, body });
}

Deno.test("members whose keys take more than one commit make a conversation, answered 201", async () => {
  const server = await startServer({ ...ENV, RELAIS_MAX_CONVERSATION_MEMBERS: "400" });
  try {
    const ascii = Array.from({ length: 400 }, (_, i) => `member-${i}-`.padEnd(64, "x"));
    const cjk = Array.from({ length: 60 }, (_, i) => `${i}`.padEnd(256, "漢"));
    for (const members of [ascii, cjk]) {
      const res = await serviceCreate(server, { members });
      assert.equal(res.status, 201, JSON.stringify(res.body).slice(0, 300));
      const id = res.body.id as string;
      const seen = await server.request(`/v1/conversations/${id}`, {
        bearer: await server.token(members.at(-1)!),
      });
      assert.equal(seen.status, 200);
      assert.equal((seen.body.members as unknown[]).length, members.length);
      const listed = await server.request("/v1/me/conversations", {
        bearer: await server.token(members[0]),
      });
      assert.deepEqual(
        (listed.body.conversations as { id: string }[]).map((c) => c.id),
        [id],
      );
    }
  } finally {
    await server.close();
  }
});

Deno.test("members whose ids would not fit the conversation's record are refused with 400 naming members", async () => {
  const server = await startServer({ ...ENV, RELAIS_MAX_CONVERSATION_MEMBERS: "400" });
  try {
    // About 120 KB as stored: two bytes per character beyond Latin-1.
    const members = Array.from({ length: 400 }, (_, i) => `${i}`.padEnd(150, "漢"));
    const res = await serviceCreate(server, { members });
    assert.equal(res.status, 400, JSON.stringify(res.body).slice(0, 300));
    const error = res.body.error as { code: string; details: { path: string }[] };
    assert.equal(error.code, "validation_failed");
    assert.equal(error.details[0].path, "members");
  } finally {
    await server.close();
  }
});

Deno.test("members added past what the conversation's record holds are refused with 400 naming members, and it stays as it was", async () => {
  const server = await startServer({ ...ENV, RELAIS_MAX_CONVERSATION_MEMBERS: "400" });
  try {
    // About 300 bytes each as stored: 400 of them would take twice what a record holds.
    const ids = Array.from({ length: 400 }, (_, i) => `${i}`.padEnd(150, "漢"));
    const created = await serviceCreate(server, { members: ids.slice(0, 25) });
    assert.equal(created.status, 201);
    const id = created.body.id as string;
    const owner = await server.token(ids[0]);
    const membersOf = async () => {
      const res = await server.request(`/v1/conversations/${id}`, { bearer: owner });
      return (res.body.members as { id: string }[]).map((m) => m.id);
    };
    let count = 25;
    let refused: Awaited<ReturnType<TestServer["request"]>> | undefined;
    while (!refused && count < ids.length) {
      const res = await server.request(`/v1/conversations/${id}/members`, {
        apiKey: SERVICE_KEY,
        body: { members: ids.slice(count, count + 25) },
      });
      if (res.status === 200) count += 25;
      else refused = res;
    }
    assert.ok(refused, "some step is refused");
    assert.equal(refused.status, 400, JSON.stringify(refused.body).slice(0, 300));
    const error = refused.body.error as { code: string; details: { path: string }[] };
    assert.equal(error.code, "validation_failed");
    assert.equal(error.details[0].path, "members");
    assert.equal((await membersOf()).length, count, "no member of the refused step was added");
    const sent = await server.request(`/v1/conversations/${id}/messages`, {
      bearer: owner,
      body: { text: "still here" },
    });
    assert.equal(sent.status, 201);
  } finally {
    await server.close();
  }
});

Deno.test("one addition of members too long for one commit is refused with 400 naming members, and smaller steps pass", async () => {
  const server = await startServer({ ...ENV, RELAIS_MAX_CONVERSATION_MEMBERS: "400" });
  try {
    // 100 ids of ~450 bytes each as keys: ~90 KiB in one commit, past the 80 KiB a commit
    // holds, while the record (~30 KB of ids) fits.
    const ids = Array.from({ length: 102 }, (_, i) => `${i}`.padEnd(150, "漢"));
    const created = await serviceCreate(server, { members: ids.slice(0, 2) });
    assert.equal(created.status, 201);
    const id = created.body.id as string;
    const whole = await server.request(`/v1/conversations/${id}/members`, {
      apiKey: SERVICE_KEY,
      body: { members: ids.slice(2) },
    });
    assert.equal(whole.status, 400, JSON.stringify(whole.body).slice(0, 300));
    const error = whole.body.error as { code: string; details: { path: string }[] };
    assert.equal(error.code, "validation_failed");
    assert.equal(error.details[0].path, "members");
    for (const from of [2, 52]) {
      const step = await server.request(`/v1/conversations/${id}/members`, {
        apiKey: SERVICE_KEY,
        body: { members: ids.slice(from, from + 50) },
      });
      assert.equal(step.status, 200, JSON.stringify(step.body).slice(0, 300));
    }
    const owner = await server.token(ids[0]);
    const res = await server.request(`/v1/conversations/${id}`, { bearer: owner });
    assert.equal((res.body.members as unknown[]).length, 102);
  } finally {
    await server.close();
  }
});

Deno.test("a member who left reads none of the messages edited after, over a replay", async () => {
  const server = await startServer(ENV);
  try {
    const alice = await server.token("alice2");
    const bob = await server.token("bob2");
    const created = await serviceCreate(server, { members: ["alice2", "bob2"], title: "Duo" });
    const id = created.body.id as string;
    const sent = await server.request(`/v1/conversations/${id}/messages`, {
      bearer: alice,
      body: { text: "original" },
    });
    assert.equal(sent.status, 201);
    // While a member, bob2's replay shows the message.
    const before = await server.request("/v1/poll?after=0&timeout=0", { bearer: bob });
    const textsOf = (body: Record<string, unknown>) =>
      (body.frames as Record<string, unknown>[]).filter((f) => f.type === "msg").map((f) => f.text);
    assert.deepEqual(textsOf(before.body), ["original"]);

    const left = await server.request(`/v1/conversations/${id}/leave`, {
      method: "POST",
      bearer: bob,
    });
    assert.equal(left.status, 200);
    const edited = await server.request(`/v1/conversations/${id}/messages/1`, {
      method: "PATCH",
      bearer: alice,
      body: { text: "EDITED AFTER BOB LEFT" },
    });
    assert.equal(edited.status, 200);

    const after = await server.request("/v1/poll?after=0&timeout=0", { bearer: bob });
    assert.equal(after.status, 200);
    assert.deepEqual(textsOf(after.body), []);
    assert.doesNotMatch(JSON.stringify(after.body), /EDITED/);
    // alice2, still a member, reads the edit (her items of the send and of the edit).
    const hers = await server.request("/v1/poll?after=0&timeout=0", { bearer: alice });
    assert.deepEqual(textsOf(hers.body), ["EDITED AFTER BOB LEFT", "EDITED AFTER BOB LEFT"]);
  } finally {
    await server.close();
  }
});

Deno.test("a 1:1 conversation of ids holding NUL is not reopened for another pair", async () => {
  const server = await startServer(ENV);
  try {
    const theirs = await serviceCreate(server, { kind: "direct", members: ["u\u0000v", "w"] });
    assert.equal(theirs.status, 201);
    const mine = await server.request("/v1/conversations", {
      bearer: await server.token("u"),
      body: { members: ["v\u0000w"] },
    });
    assert.equal(mine.status, 201);
    assert.notEqual(mine.body.id, theirs.body.id);
    assert.deepEqual(
      (mine.body.members as { id: string }[]).map((m) => m.id).sort(),
      ["u", "v\u0000w"],
    );
  } finally {
    await server.close();
  }
});

Deno.test("reopening a 1:1 conversation the caller is no longer in answers 403 and shows nothing", async () => {
  const server = await startServer(ENV);
  try {
    const first = await server.request("/v1/conversations", {
      bearer: await server.token("kim"),
      body: { members: ["lou"] },
    });
    assert.equal(first.status, 201);
    const sent = await server.request(`/v1/conversations/${first.body.id}/messages`, {
      bearer: await server.token("lou"),
      body: { text: "for kim only" },
    });
    assert.equal(sent.status, 201);
    // kim is erased; a later user under the same id is someone else.
    const erased = await server.request("/v1/users/kim", {
      method: "DELETE",
      apiKey: SERVICE_KEY,
    });
    assert.equal(erased.status, 200);
    const again = await server.request("/v1/conversations", {
      bearer: await server.token("kim"),
      body: { members: ["lou"] },
    });
    assert.equal(again.status, 403);
    assert.equal((again.body.error as { code: string }).code, "not_member");
    assert.equal(again.body.members, undefined);
    assert.equal(again.body.last_seq, undefined);
  } finally {
    await server.close();
  }
});

Deno.test("only conversations actually created count against the new conversations limit", async () => {
  const server = await startServer({ ...ENV, RELAIS_RATE_CONVERSATIONS: "2/1h" });
  try {
    const bearer = await server.token("dave");
    const post = (body: unknown) => server.request("/v1/conversations", { bearer, body });
    const statuses = [];
    // One conversation created, then reopened many times.
    for (let i = 0; i < 5; i++) statuses.push((await post({ members: ["carol"] })).status);
    assert.deepEqual(statuses, [201, 200, 200, 200, 200]);
    // Invalid requests create nothing either.
    assert.equal((await post({ members: [] })).status, 400);
    assert.equal((await post({ members: ["dave"] })).status, 400);
    assert.equal((await post({ nope: true })).status, 400);
    // The second conversation is the last one allowed.
    assert.equal((await post({ members: ["erin"] })).status, 201);
    const refused = await fetch(`${server.origin}/v1/conversations`, {
      method: "POST",
      headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
      body: JSON.stringify({ members: ["frank"] }),
    });
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers.get("retry-after")) >= 1);
    assert.equal((await refused.json()).error.code, "rate_limited");
    // Reopening stays possible past the limit, and nothing was created for frank.
    assert.equal((await post({ members: ["carol"] })).status, 200);
    const list = await server.request("/v1/me/conversations", { bearer });
    assert.equal((list.body.conversations as unknown[]).length, 2);
  } finally {
    await server.close();
  }
});
