/**
 * Ids that collide with `Object.prototype` members, or that are long, Unicode, slashed or
 * full of control characters, are ids like any other: as the acting user (JWT `sub`), as
 * the target of every id-taking route and WebSocket frame, and in envelopes and
 * preferences. Never a 5xx, never a crash, and never a way into someone else's
 * conversation.
 */

import assert from "node:assert/strict";
import {
  envelope,
  eventually,
  SERVICE_KEY,
  startServer,
  type TestServer,
} from "../_support/server.ts";
import { connect, type Frame, type TestClient } from "../_support/ws_client.ts";

const ENV = { RELAIS_CONVERSATION_POLICY: "any", RELAIS_RATE_MESSAGES: "off" };

/** Names an ordinary object answers to without owning them. */
const PROTO_NAMES = [
  "constructor",
  "toString",
  "valueOf",
  "hasOwnProperty",
  "__proto__",
  "prototype",
  "__defineGetter__",
  "isPrototypeOf",
  "propertyIsEnumerable",
  "toLocaleString",
];

/** The longest user id a route accepts, and one character more. */
const LONGEST = "x".repeat(256);
const TOO_LONG = "x".repeat(257);
/** Far over every cap, and over Deno KV's key size limit. */
const HUGE = "x".repeat(5000);

/** Every shape of id the routes and frames must take calmly. */
const HOSTILE = [
  ...PROTO_NAMES,
  LONGEST,
  "élève-🎓",
  "\u05d0\u05d1\u05d2-\u202eevil\u202c",
  "e\u0301\u0327\u0308",
  "a/b",
  "..",
  "../..",
  "%2F",
  "%00",
  " padded id ",
  "\t",
  "nul\u0000byte",
  "\u0001\u001f\u007f",
];

/** Dot segments: no path could export or erase them, so they are no one's user id. */
const NOT_USER_IDS = new Set([".", ".."]);

const isServerError = (status: number) => status >= 500;

function assertNot5xx(res: { status: number; body: unknown }, what: string) {
  assert.ok(
    !isServerError(res.status),
    `${what} answered ${res.status} ${JSON.stringify(res.body)}`,
  );
}

/** An id as one path segment. */
const seg = (id: string) => encodeURIComponent(id);

/** Creates a group with the service key; answers its id. */
async function group(server: TestServer, members: string[]) {
  const res = await server.request("/v1/conversations", {
    apiKey: SERVICE_KEY,
    body: { members, title: "Relecture" },
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.id as string;
}

const isMsg = (conversation: string) => (f: Frame) =>
  f.type === "msg" && f.conversation === conversation;

/** A round trip on the socket: every frame sent before it has been handled. */
async function barrier(client: TestClient) {
  const ref = crypto.randomUUID();
  client.send({ type: "ping", ref });
  await client.next((f) => f.type === "pong");
}

/** The server still serves: health, and a normal user still gets a publish live. */
async function assertStillServing(server: TestServer) {
  const health = await fetch(`${server.origin}/healthz`);
  assert.equal(health.status, 200);
  await health.body?.cancel();
  const { client } = await server.login("witness");
  const published = await server.publish(envelope(["witness"]));
  assert.equal(published.status, 202, JSON.stringify(published.body));
  const frame = await client.next((f) => f.type === "event");
  assert.equal(frame.envelope.metadata.source, "feedback");
}

Deno.test("a user named after an Object.prototype member cannot post into nor read a conversation they are not in", async () => {
  const server = await startServer(ENV);
  try {
    const id = await group(server, ["ana", "ben"]);
    const { client: ana } = await server.login("ana");
    const ben = await server.token("ben");
    const first = await server.request(`/v1/conversations/${id}/messages`, {
      bearer: ben,
      body: { text: "premier" },
    });
    assert.equal(first.status, 201);
    await ana.next(isMsg(id));

    for (const name of PROTO_NAMES) {
      const bearer = await server.token(name);
      const path = `/v1/conversations/${id}`;
      const attempts: [string, { method?: string; body?: unknown }][] = [
        [`${path}/messages`, { body: { text: "intrus" } }],
        [`${path}/messages`, {}],
        [path, {}],
        [`${path}/read`, { body: {} }],
        [`${path}/read`, { body: { seq: 1 } }],
        [`${path}/typing`, { method: "POST" }],
        [`${path}/messages/1`, { method: "PATCH", body: { text: "modifié" } }],
        [`${path}/messages/1`, { method: "DELETE" }],
        [`${path}/leave`, { method: "POST" }],
        [`${path}/mute`, { method: "PUT" }],
        [`${path}/mute`, { method: "DELETE" }],
        [`${path}/members`, { body: { members: ["mallory"] } }],
        [`${path}/members/ana`, { method: "DELETE" }],
      ];
      for (const [url, init] of attempts) {
        const res = await server.request(url, { ...init, bearer });
        assert.ok(
          res.status === 403 || res.status === 404,
          `${name}: ${init.method ?? (init.body ? "POST" : "GET")} ${url} answered ${res.status} ${
            JSON.stringify(res.body)
          }`,
        );
      }

      const { client } = await server.login(name);
      client.send({ type: "msg.send", conversation: id, text: "intrus", client_id: "x", ref: "s" });
      client.send({ type: "typing", conversation: id, ref: "t" });
      client.send({ type: "read", conversation: id, seq: 1, ref: "r" });
      for (const ref of ["s", "t", "r"]) {
        const error = await client.next((f) => f.type === "error" && f.ref === ref);
        assert.ok(["not_member", "forbidden", "not_found"].includes(error.code), error.code);
      }
      await client.close();
    }

    // Barrier: the next message ana gets is ben's; nothing from the intruders came first.
    await server.request(`/v1/conversations/${id}/messages`, {
      bearer: ben,
      body: { text: "fin" },
    });
    const next = await ana.next((f) => f.type === "msg" || f.type === "typing");
    assert.equal(next.type, "msg");
    assert.equal(next.text, "fin");

    // The conversation rebuilt from the store (as after a restart) still works for members.
    server.relais.registry.stop("conversation", id);
    const read = await server.request(`/v1/conversations/${id}/read`, {
      bearer: await server.token("ana"),
      body: {},
    });
    assert.deepEqual(read.body, { conversation: id, read: 2, unread: 0 });
    const receipt = await ana.next((f) => f.type === "receipt");
    assert.deepEqual([receipt.user, receipt.seq], ["ana", 2]);
    const view = await server.request(`/v1/conversations/${id}`, { bearer: ben });
    assert.deepEqual((view.body.members as { id: string }[]).map((m) => m.id), ["ana", "ben"]);
    const history = await server.request(`/v1/conversations/${id}/messages`, { bearer: ben });
    assert.deepEqual((history.body.messages as Frame[]).map((m) => m.text), ["fin", "premier"]);
    await assertStillServing(server);
  } finally {
    await server.close();
  }
});

Deno.test("a member named after an Object.prototype member sends, reads, types and gets receipts in their own conversation", async () => {
  const server = await startServer(ENV);
  try {
    for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"]) {
      const id = await group(server, [name, "ana", "ben"]);
      const bearer = await server.token(name);
      const { client: me } = await server.login(name);
      const { client: ana } = await server.login("ana");

      const sent = await server.request(`/v1/conversations/${id}/messages`, {
        bearer,
        body: { text: `bonjour de ${name}`, client_id: "valueOf" },
      });
      assert.equal(sent.status, 201, `${name}: ${JSON.stringify(sent.body)}`);
      assert.equal((await ana.next(isMsg(id))).from, name);
      await me.next(isMsg(id));

      me.send({ type: "msg.send", conversation: id, text: "par socket", client_id: "constructor" });
      const echoed = await me.next(isMsg(id));
      assert.equal(echoed.from, name);
      assert.equal((await ana.next(isMsg(id))).seq, echoed.seq);

      const anaBearer = await server.token("ana");
      await server.request(`/v1/conversations/${id}/messages`, {
        bearer: anaBearer,
        body: { text: "réponse" },
      });
      assert.equal((await me.next(isMsg(id))).text, "réponse");
      await ana.next(isMsg(id));

      const read = await server.request(`/v1/conversations/${id}/read`, { bearer, body: {} });
      assert.equal(read.status, 200, `${name}: ${JSON.stringify(read.body)}`);
      assert.deepEqual(read.body, { conversation: id, read: 3, unread: 0 });
      const receipt = await ana.next((f) => f.type === "receipt");
      assert.deepEqual([receipt.user, receipt.seq], [name, 3]);

      const typing = await server.request(`/v1/conversations/${id}/typing`, {
        method: "POST",
        bearer,
      });
      assert.equal(typing.status, 204, `${name}: ${JSON.stringify(typing.body)}`);
      assert.equal((await ana.next((f) => f.type === "typing")).user, name);
      me.send({ type: "read", conversation: id, seq: 3, ref: "r" });
      await barrier(me);

      // A block between ana and this member holds, and the actor keeps working.
      const blocked = await server.request(`/v1/me/blocks/${seg(name)}`, {
        method: "PUT",
        bearer: anaBearer,
      });
      assert.equal(blocked.status, 200, JSON.stringify(blocked.body));
      await server.request(`/v1/conversations/${id}/messages`, {
        bearer,
        body: { text: "caché" },
      });
      await server.request(`/v1/conversations/${id}/messages`, {
        bearer: await server.token("ben"),
        body: { text: "visible" },
      });
      assert.equal((await ana.next(isMsg(id))).text, "visible");

      // Rebuilt from the store, the conversation knows this member and their read position.
      server.relais.registry.stop("conversation", id);
      const again = await server.request(`/v1/conversations/${id}/read`, { bearer, body: {} });
      assert.equal(again.status, 200, `${name}: ${JSON.stringify(again.body)}`);
      const history = await server.request(`/v1/conversations/${id}/messages`, { bearer });
      assert.equal(history.status, 200);
      assert.equal((history.body.messages as Frame[]).length, 5);
      const view = await server.request(`/v1/conversations/${id}`, { bearer });
      assert.ok((view.body.members as { id: string }[]).some((m) => m.id === name));
      const listed = await server.request("/v1/me/conversations", { bearer });
      assert.ok((listed.body.conversations as { id: string }[]).some((c) => c.id === id));
      const left = await server.request(`/v1/conversations/${id}/leave`, {
        method: "POST",
        bearer,
      });
      assert.equal(left.status, 200, JSON.stringify(left.body));
      await me.close();
      await ana.close();
    }

    // A 1:1 conversation a hostile-named user starts.
    const bearer = await server.token("constructor");
    const direct = await server.request("/v1/conversations", {
      bearer,
      body: { members: ["__proto__"] },
    });
    assert.equal(direct.status, 201, JSON.stringify(direct.body));
    const sent = await server.request(`/v1/conversations/${direct.body.id}/messages`, {
      bearer,
      body: { text: "salut" },
    });
    assert.equal(sent.status, 201, JSON.stringify(sent.body));
    const read = await server.request(`/v1/conversations/${direct.body.id}/read`, {
      bearer: await server.token("__proto__"),
      body: {},
    });
    assert.deepEqual(read.body, { conversation: direct.body.id, read: 1, unread: 0 });
    await assertStillServing(server);
  } finally {
    await server.close();
  }
});

Deno.test("envelopes whose source, topic, collapse key, emitter or targets are hostile publish and arrive", async () => {
  const server = await startServer(ENV);
  try {
    // Preferences exist, so the source is looked up in them.
    const user = "constructor";
    const bearer = await server.token(user);
    const prefs = await server.request("/v1/me/preferences", {
      method: "PUT",
      bearer,
      body: { sources: { feedback: { channels: ["inapp"] } } },
    });
    assert.equal(prefs.status, 200, JSON.stringify(prefs.body));
    const { client } = await server.login(user);
    for (const name of PROTO_NAMES) {
      for (const field of ["source", "topic", "collapse_key", "emitter"] as const) {
        const sent = envelope([user], {
          metadata: { [field]: name },
          routing: { channels: ["inapp", "email"] },
        });
        const res = await server.publish(sent);
        assert.equal(res.status, 202, `${field} ${name}: ${JSON.stringify(res.body)}`);
        const id = (sent.metadata as { id: string }).id;
        const frame = await client.next((f) =>
          (f.type === "event" || f.type === "update") && f.envelope.metadata.id === id
        );
        assert.equal(frame.envelope.metadata[field], name);
      }
    }
    // A payload field named after a prototype member reaches the client as sent.
    const payload = JSON.parse('{"__proto__": {"x": 1}, "constructor": "c", "fr": {"title": "t"}}');
    const withPayload = envelope([user], { payload });
    assert.equal((await server.publish(withPayload)).status, 202);
    const delivered = await client.next((f) =>
      f.type === "event" &&
      f.envelope.metadata.id === (withPayload.metadata as { id: string }).id
    );
    assert.deepEqual(delivered.envelope.payload, payload);
    assert.ok(Object.hasOwn(delivered.envelope.payload, "__proto__"));

    for (const target of HOSTILE) {
      const res = await server.publish(envelope([target]));
      // Envelope targets are trimmed, then user ids (at most 256 characters, not a dot segment).
      const trimmed = target.trim();
      const valid = trimmed !== "" && trimmed.length <= 256 && !NOT_USER_IDS.has(trimmed);
      assert.equal(
        res.status,
        valid ? 202 : 400,
        `target ${JSON.stringify(target)}: ${JSON.stringify(res.body)}`,
      );
    }
    const { client: proto } = await server.login("__proto__");
    const acked = envelope(["__proto__", "hasOwnProperty"], {
      routing: { retry: { ack_required: true } },
    });
    const id = (acked.metadata as { id: string }).id;
    const res = await server.publish(acked);
    assert.equal(res.status, 202);
    await proto.next((f) => f.type === "event" && f.envelope.metadata.id === id);
    proto.send({ type: "ack", id });
    await eventually(
      async () => {
        const status = await server.request(`/v1/events/${id}`, { apiKey: SERVICE_KEY });
        assert.equal(status.status, 200);
        assert.deepEqual(status.body.pending_users, ["hasOwnProperty"]);
        return true;
      },
      5000,
      "the ack of __proto__",
    );
    await assertStillServing(server);
  } finally {
    await server.close();
  }
});

Deno.test("preferences for sources named __proto__ or constructor round-trip and apply", async () => {
  const server = await startServer(ENV);
  try {
    const bearer = await server.token("ana");
    // JSON.parse makes "__proto__" an own key, as a client's JSON body does.
    const sources = JSON.parse(`{
      "__proto__": {"channels": ["inapp", "email"], "digest": "daily"},
      "constructor": {"channels": ["none"]},
      "toString": {"channels": ["email"], "digest": "hourly"},
      "hasOwnProperty": {"channels": ["inapp"]},
      "feedback": {"channels": ["inapp"]}
    }`);
    const put = await server.request("/v1/me/preferences", {
      method: "PUT",
      bearer,
      body: { sources },
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const got = await server.request("/v1/me/preferences", { bearer });
    assert.equal(got.status, 200);
    const back = got.body.sources as Record<string, unknown>;
    assert.deepEqual(Object.keys(back).sort(), Object.keys(sources).sort());
    assert.ok(Object.hasOwn(back, "__proto__"));
    assert.deepEqual(back["__proto__"], { channels: ["inapp", "email"], digest: "daily" });
    assert.deepEqual(back["constructor"], { channels: [], digest: "off" });
    assert.deepEqual(back["toString"], { channels: ["email"], digest: "hourly" });

    // "constructor" is muted in-app: its notification is not pushed, the next one is.
    const { client } = await server.login("ana");
    const muted = await server.publish(envelope(["ana"], { metadata: { source: "constructor" } }));
    assert.equal(muted.status, 202, JSON.stringify(muted.body));
    const shown = await server.publish(envelope(["ana"], { metadata: { source: "__proto__" } }));
    assert.equal(shown.status, 202, JSON.stringify(shown.body));
    const frame = await client.next((f) => f.type === "event");
    assert.equal(frame.envelope.metadata.source, "__proto__");
    const valueOf = await server.publish(envelope(["ana"], { metadata: { source: "valueOf" } }));
    assert.equal(valueOf.status, 202, JSON.stringify(valueOf.body));
    assert.equal(
      (await client.next((f) => f.type === "event")).envelope.metadata.source,
      "valueOf",
    );
    await assertStillServing(server);
  } finally {
    await server.close();
  }
});

Deno.test("every id-taking route answers a hostile or oversized id without a 5xx", async () => {
  const server = await startServer(ENV);
  try {
    const id = await group(server, ["ana", "ben"]);
    const ana = await server.token("ana");
    await server.request(`/v1/conversations/${id}/messages`, { bearer: ana, body: { text: "a" } });
    const service = { apiKey: SERVICE_KEY };

    for (const raw of [...HOSTILE, TOO_LONG, HUGE]) {
      const h = seg(raw);
      const user = { bearer: ana };
      const calls: [string, string, { bearer?: string; apiKey?: string }, unknown?][] = [
        ["PUT", `/v1/users/${h}`, service, { email: "x@example.org", roles: [raw] }],
        ["GET", `/v1/users/${h}`, service],
        ["GET", `/v1/users/${h}/export`, service],
        ["DELETE", `/v1/users/${h}`, service],
        ["GET", `/v1/events/${h}`, service],
        ["GET", `/v1/admin/actors/user/${h}`, service],
        ["GET", `/v1/admin/actors/conversation/${h}`, service],
        ["GET", `/v1/admin/controls/${h}`, service],
        ["PUT", `/v1/admin/controls/${h}`, service, { features: ["email"], reason: "test" }],
        ["DELETE", `/v1/admin/controls/${h}`, service],
        ["PUT", "/v1/admin/controls", service, {
          scope: { type: "USER", id: raw },
          features: ["email"],
          reason: "test",
        }],
        ["DELETE", `/v1/admin/controls/${seg(`user:${raw}`)}`, service],
        ["POST", `/v1/me/notifications/${h}/read`, user],
        ["POST", `/v1/me/notifications/${h}/ack`, user],
        ["PUT", `/v1/me/blocks/${h}`, user],
        ["DELETE", `/v1/me/blocks/${h}`, user],
        ["POST", "/v1/conversations", user, { members: [raw] }],
        ["POST", "/v1/conversations", service, { members: ["ana", raw], owners: [raw] }],
        ["GET", `/v1/conversations/${h}`, user],
        ["GET", `/v1/conversations/${h}/messages`, user],
        ["POST", `/v1/conversations/${h}/messages`, user, { text: "x", client_id: raw }],
        ["PATCH", `/v1/conversations/${h}/messages/1`, user, { text: "y" }],
        ["DELETE", `/v1/conversations/${h}/messages/1`, user],
        ["POST", `/v1/conversations/${h}/read`, user, {}],
        ["POST", `/v1/conversations/${h}/typing`, user],
        ["POST", `/v1/conversations/${h}/leave`, user],
        ["PUT", `/v1/conversations/${h}/mute`, user],
        ["DELETE", `/v1/conversations/${h}/mute`, user],
        ["POST", `/v1/conversations/${h}/members`, service, { members: ["ana"] }],
        ["DELETE", `/v1/conversations/${h}/members/ana`, service],
        ["POST", `/v1/conversations/${id}/messages`, user, { text: "z", client_id: raw }],
        ["POST", `/v1/conversations/${id}/members`, service, { members: [raw] }],
        ["DELETE", `/v1/conversations/${id}/members/${h}`, service],
        ["DELETE", `/v1/conversations/${id}/members/${h}`, user],
        ["PUT", "/v1/me/preferences", user, { sources: { [raw]: { channels: ["inapp"] } } }],
      ];
      for (const [method, path, auth, body] of calls) {
        const res = await server.request(path, { method, ...auth, body });
        assertNot5xx(res, `${method} ${path.slice(0, 120)}`);
        // One character over the longest id is refused everywhere.
        if (raw === TOO_LONG || raw === HUGE) {
          assert.ok(
            res.status >= 400 && res.status < 500,
            `${method} ${path.slice(0, 120)}: ${res.status}`,
          );
        }
      }
    }
    // The longest accepted id works as a member.
    const added = await server.request(`/v1/conversations/${id}/members`, {
      ...service,
      body: { members: [LONGEST] },
    });
    assert.equal(added.status, 200, JSON.stringify(added.body));
    await assertStillServing(server);
  } finally {
    await server.close();
  }
});

Deno.test("every WebSocket frame that carries an id takes a hostile one, as target and as the user", async () => {
  const server = await startServer(ENV);
  try {
    const id = await group(server, ["ana", "ben"]);
    const { client: ana } = await server.login("ana");
    for (const raw of HOSTILE) {
      // As the acting user; no one's id is refused as any bad credential is, and someone
      // else sends its frames.
      let user = raw;
      if (NOT_USER_IDS.has(raw)) {
        const refused = await connect(server.wsUrl);
        refused.send({ type: "hello", token: await server.token(raw) });
        assert.equal((await refused.closed).code, 4001);
        user = "dot-sender";
      }
      const { client, welcome } = await server.login(user);
      assert.equal(welcome.type, "welcome", JSON.stringify(welcome));
      assert.equal(welcome.user, user);
      client.send({ type: "presence.set", status: "away" });
      // As the target.
      const frames: Record<string, unknown>[] = [
        { type: "ack", id: raw, ref: "1" },
        { type: "read", id: raw, ref: "2" },
        { type: "read", conversation: raw, seq: 1, ref: "3" },
        { type: "msg.send", conversation: raw, text: "x", client_id: raw, ref: "4" },
        { type: "typing", conversation: raw, ref: "5" },
        { type: "msg.send", conversation: id, text: "x", client_id: raw, ref: "6" },
        { type: "typing", conversation: id, ref: "7" },
        { type: "read", conversation: id, seq: 1, ref: "8" },
        { type: "presence.set", status: "online", ref: "9" },
      ];
      for (const frame of frames) client.send(frame);
      await barrier(client);
      for (const f of client.received) {
        if (f.type === "error") assert.notEqual(f.code, "internal", JSON.stringify(f));
      }
      await client.close();

      // As a member's client_id: a resend with it answers the stored message.
      if (raw.length > 200) continue;
      ana.send({ type: "msg.send", conversation: id, text: "x", client_id: raw });
      const first = await ana.next(isMsg(id));
      ana.send({ type: "msg.send", conversation: id, text: "x", client_id: raw });
      const again = await ana.next(isMsg(id));
      assert.equal(again.id, first.id, JSON.stringify(raw));
    }
    await barrier(ana);
    for (const f of ana.received) {
      if (f.type === "error") assert.notEqual(f.code, "internal", JSON.stringify(f));
    }
    // A hello whose token names a hostile user resumes like anyone's.
    const { welcome } = await server.login("constructor", { after: 0 });
    assert.equal(welcome.user, "constructor");
    await assertStillServing(server);
  } finally {
    await server.close();
  }
});

Deno.test("push subscriptions take hostile users and endpoints, and refuse oversized ones, without a 5xx", async () => {
  const server = await startServer(ENV);
  try {
    const keys = {
      p256dh:
        "BHUOq1ZMfK65VwNJ4vc9Es8xFTxHE5a72zZGnQzWq9T86-FrCsAIdguqFksVJkpHN87XdyW85ECyJj2GkJuaAqU",
      auth: "5I2Bu2oKdyy9CwL8QVF0NQ",
    };
    for (const raw of [...HOSTILE, TOO_LONG, HUGE]) {
      const endpoint = `https://fcm.googleapis.com/fcm/send/${seg(raw)}`;
      // The user is the hostile one: a subscription of their own, then gone again.
      if (raw !== TOO_LONG && raw !== HUGE && !NOT_USER_IDS.has(raw)) {
        const own = { bearer: await server.token(raw) };
        const fine = "https://fcm.googleapis.com/fcm/send/ok";
        const added = await server.request("/v1/me/push-subscriptions", {
          ...own,
          body: { endpoint: fine, keys },
        });
        assert.equal(added.status, 201, `${raw.slice(0, 40)}: ${JSON.stringify(added.body)}`);
        const removed = await server.request("/v1/me/push-subscriptions", {
          method: "DELETE",
          ...own,
          body: { endpoint: fine },
        });
        assert.deepEqual(removed.body, { removed: true }, raw.slice(0, 40));
      }
      // The endpoint is the hostile one.
      const bearer = await server.token("ana");
      const calls: [string, unknown][] = [["POST", { endpoint, keys }], ["DELETE", { endpoint }]];
      for (const [method, body] of calls) {
        const res = await server.request("/v1/me/push-subscriptions", { method, bearer, body });
        assertNot5xx(res, `${method} push subscription ${endpoint.slice(0, 80)}`);
        if (raw === HUGE) assert.equal(res.status, 400, `${method}: ${res.status}`);
      }
    }
    await assertStillServing(server);
  } finally {
    await server.close();
  }
});
