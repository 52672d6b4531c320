/** End-to-end: the SSE transport over real HTTP on loopback. */

import assert from "node:assert/strict";
import { envelope, eventually, startServer, type TestServer } from "../_support/server.ts";
import { openSse } from "../_support/sse_client.ts";

function presenceOf(server: TestServer, user: string): unknown {
  const snapshot = server.relais.registry.peek("user", user)?.getSnapshot();
  return (snapshot?.value as string | undefined) ?? "offline";
}

async function ticket(server: TestServer, user: string): Promise<string> {
  const res = await server.request("/v1/connect-tickets", {
    method: "POST",
    bearer: await server.token(user),
  });
  assert.equal(res.status, 201);
  return res.body.ticket as string;
}

Deno.test("an SSE stream sends the welcome, then live events with their epoch and stream seq as id", async () => {
  const server = await startServer();
  const sse = await openSse(`${server.origin}/v1/sse`, {
    authorization: `Bearer ${await server.token("camille")}`,
  });
  try {
    assert.equal(sse.status, 200);
    assert.match(sse.headers.get("content-type") ?? "", /^text\/event-stream/);
    const welcome = await sse.next();
    assert.equal(welcome.frame.type, "welcome");
    assert.equal(welcome.frame.user, "camille");
    assert.equal(welcome.frame.seq, 0);
    assert.equal(typeof welcome.frame.heartbeat_ms, "number");
    const sent = envelope(["camille"]);
    assert.equal((await server.publish(sent)).status, 202);
    const event = await sse.next((e) => e.frame.type === "event");
    assert.equal(event.id, `${welcome.frame.epoch}:1`);
    assert.equal(event.frame.seq, 1);
    assert.deepEqual(event.frame.envelope.payload, sent.payload);
    assert.equal(event.frame.envelope.routing, undefined);
  } finally {
    await sse.close();
    await server.close();
  }
});

Deno.test("an SSE stream resumes after Last-Event-ID in order, and the header wins over ?after=", async () => {
  const server = await startServer();
  try {
    const bearer = { authorization: `Bearer ${await server.token("yanis")}` };
    // A first stream gets the epoch of yanis's head, which lives on after it closes.
    const first = await openSse(`${server.origin}/v1/sse`, bearer);
    const epoch = (await first.next()).frame.epoch as string;
    await first.close();
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const e = envelope(["yanis"]);
      ids.push((e.metadata as { id: string }).id);
      assert.equal((await server.publish(e)).status, 202);
    }
    const sse = await openSse(`${server.origin}/v1/sse?after=0`, {
      ...bearer,
      "last-event-id": `${epoch}:2`,
    });
    try {
      const welcome = await sse.next();
      assert.equal(welcome.frame.epoch, epoch);
      assert.equal(welcome.frame.recovered, true);
      assert.equal(welcome.frame.seq, 4);
      const replayed = [await sse.next(), await sse.next()];
      assert.deepEqual(replayed.map((e) => e.id), [`${epoch}:3`, `${epoch}:4`]);
      assert.deepEqual(replayed.map((e) => e.frame.envelope.metadata.id), ids.slice(2));
      // Barrier: the next event is the next live item, nothing from before `after` again.
      assert.equal((await server.publish(envelope(["yanis"]))).status, 202);
      assert.equal((await sse.next((e) => e.frame.type === "event")).id, `${epoch}:5`);
    } finally {
      await sse.close();
    }
  } finally {
    await server.close();
  }
});

Deno.test("an SSE stream opened with a ticket resumes after ?after=, and the ticket works once", async () => {
  const server = await startServer();
  try {
    for (let i = 0; i < 3; i++) await server.publish(envelope(["emma"]));
    const t = await ticket(server, "emma");
    const sse = await openSse(`${server.origin}/v1/sse?ticket=${t}&after=1`);
    try {
      assert.equal(sse.status, 200);
      const welcome = (await sse.next()).frame;
      assert.equal(welcome.type, "welcome");
      const ids = [(await sse.next()).id, (await sse.next()).id];
      assert.deepEqual(ids, [`${welcome.epoch}:2`, `${welcome.epoch}:3`]);
      const again = await openSse(`${server.origin}/v1/sse?ticket=${t}`);
      assert.equal(again.status, 401);
      assert.equal((again.body as { error: { code: string } }).error.code, "unauthenticated");
    } finally {
      await sse.close();
    }
  } finally {
    await server.close();
  }
});

Deno.test("an SSE request without credentials or with a bad position is refused with a 4xx", async () => {
  const server = await startServer();
  try {
    const anonymous = await openSse(`${server.origin}/v1/sse`);
    assert.equal(anonymous.status, 401);
    const bearer = { authorization: `Bearer ${await server.token("camille")}` };
    const badQuery = await openSse(`${server.origin}/v1/sse?after=-3`, bearer);
    assert.equal(badQuery.status, 400);
    const details = (badQuery.body as { error: { details: { path: string }[] } }).error.details;
    assert.equal(details[0].path, "after");
    const badHeader = await openSse(`${server.origin}/v1/sse`, {
      ...bearer,
      "last-event-id": "abc",
    });
    assert.equal(badHeader.status, 400);
    assert.match(JSON.stringify(badHeader.body), /Last-Event-ID/);
  } finally {
    await server.close();
  }
});

Deno.test("a quiet SSE stream gets pings, and an idle one ends with a close frame 4009 and goes offline", async () => {
  const server = await startServer({ RELAIS_HEARTBEAT_MS: "100", RELAIS_IDLE_TIMEOUT_MS: "600" });
  const sse = await openSse(`${server.origin}/v1/sse`, {
    authorization: `Bearer ${await server.token("camille")}`,
  });
  try {
    await sse.next((e) => e.frame.type === "welcome");
    await eventually(() => presenceOf(server, "camille") === "online", 2000, "online");
    const ping = await sse.next((e) => e.frame.type === "ping", 2000);
    assert.equal(ping.id, undefined);
    const close = await sse.next((e) => e.frame.type === "close", 3000);
    assert.equal(close.frame.code, 4009);
    await sse.ended;
    await eventually(() => presenceOf(server, "camille") === "offline", 2000, "offline");
  } finally {
    await sse.close();
    await server.close();
  }
});

Deno.test("presence posted with the SSE session counts as activity and sets the status", async () => {
  const server = await startServer({ RELAIS_HEARTBEAT_MS: "100", RELAIS_IDLE_TIMEOUT_MS: "700" });
  const token = await server.token("camille");
  const sse = await openSse(`${server.origin}/v1/sse`, { authorization: `Bearer ${token}` });
  try {
    const session = (await sse.next()).frame.session as string;
    const away = await server.request("/v1/me/presence", {
      bearer: token,
      body: { status: "away", session },
    });
    assert.equal(away.status, 200);
    await eventually(() => presenceOf(server, "camille") === "away", 2000, "away");
    // Keep it active past the idle timeout.
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 200)); // measures time: activity every 200 ms
      const res = await server.request("/v1/me/presence", {
        bearer: token,
        body: { status: "online", session },
      });
      assert.equal(res.status, 200);
    }
    // Barrier: a close frame would have come before an item published now.
    const barrier = envelope(["camille"]);
    const barrierId = (barrier.metadata as { id: string }).id;
    await server.publish(barrier);
    const closes = await sse.before(
      (e) => e.frame.type === "event" && e.frame.envelope.metadata.id === barrierId,
      (e) => e.frame.type === "close",
    );
    assert.deepEqual(closes, []);
    assert.equal(presenceOf(server, "camille"), "online");
    const other = await server.request("/v1/me/presence", {
      bearer: await server.token("yanis"),
      body: { status: "away", session },
    });
    assert.equal(other.status, 404);
    const bad = await server.request("/v1/me/presence", {
      bearer: token,
      body: { status: "busy" },
    });
    assert.equal(bad.status, 400);
  } finally {
    await sse.close();
    await server.close();
  }
});

Deno.test("closing an SSE stream detaches it, and the user goes offline", async () => {
  const server = await startServer();
  const sse = await openSse(`${server.origin}/v1/sse`, {
    authorization: `Bearer ${await server.token("yanis")}`,
  });
  await sse.next();
  await eventually(() => presenceOf(server, "yanis") === "online", 2000, "online");
  await sse.close();
  try {
    await eventually(() => presenceOf(server, "yanis") === "offline", 2000, "offline");
    assert.equal(server.relais.hub.size(), 0);
  } finally {
    await server.close();
  }
});

Deno.test("an SSE stream whose token expires ends with a close frame 4001", async () => {
  const server = await startServer();
  const sse = await openSse(`${server.origin}/v1/sse`, {
    authorization: `Bearer ${await server.token("emma", { ttlSeconds: 2 })}`,
  });
  try {
    await sse.next();
    const close = await sse.next((e) => e.frame.type === "close", 4000);
    assert.equal(close.frame.code, 4001);
  } finally {
    await sse.close();
    await server.close();
  }
});
