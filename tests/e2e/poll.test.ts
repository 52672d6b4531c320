/** End-to-end: the long-poll transport over real HTTP on loopback. */

import assert from "node:assert/strict";
import { envelope, eventually, startServer, type TestServer } from "../_support/server.ts";
import type { Frame } from "../_support/ws_client.ts";

interface Batch {
  session: string;
  seq: number;
  frames: Frame[];
}

function presenceOf(server: TestServer, user: string): unknown {
  const snapshot = server.relais.registry.peek("user", user)?.getSnapshot();
  return (snapshot?.value as string | undefined) ?? "offline";
}

async function poll(
  server: TestServer,
  query: string,
  auth: { bearer?: string } = {},
): Promise<
  { status: number; body: Batch & { error?: { code: string; details?: { path: string }[] } } }
> {
  const res = await fetch(`${server.origin}/v1/poll?${query}`, {
    headers: auth.bearer ? { authorization: `Bearer ${auth.bearer}` } : {},
  });
  return { status: res.status, body: await res.json() };
}

Deno.test("a first poll answers at once with the welcome and a session", async () => {
  const server = await startServer();
  try {
    await server.publish(envelope(["camille"]));
    const started = Date.now();
    const res = await poll(server, "timeout=10000", { bearer: await server.token("camille") });
    assert.ok(Date.now() - started < 5000);
    assert.equal(res.status, 200);
    assert.equal(res.body.frames.length, 1);
    assert.equal(res.body.frames[0].type, "welcome");
    assert.equal(res.body.frames[0].seq, 1);
    assert.equal(res.body.frames[0].recovered, false);
    assert.equal(res.body.session, res.body.frames[0].session);
    assert.equal(res.body.seq, 1);
  } finally {
    await server.close();
  }
});

Deno.test("an empty poll waits for its timeout, then answers an empty batch", async () => {
  const server = await startServer();
  try {
    const bearer = await server.token("camille");
    const first = await poll(server, "", { bearer });
    const started = Date.now();
    const res = await poll(server, `session=${first.body.session}&after=0&timeout=500`, { bearer });
    const waited = Date.now() - started;
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.frames, []);
    assert.equal(res.body.seq, 0);
    assert.ok(waited >= 480, `answered after ${waited} ms`);
    assert.ok(waited < 5000, `answered after ${waited} ms`);
  } finally {
    await server.close();
  }
});

Deno.test("a waiting poll answers as soon as an event arrives, and the next poll continues from its seq", async () => {
  const server = await startServer();
  try {
    const bearer = await server.token("yanis");
    const first = await poll(server, "", { bearer });
    const started = Date.now();
    const waiting = poll(server, `session=${first.body.session}&after=0&timeout=20000`, { bearer });
    // Not observable from outside: the wait only makes it likely that the poll is parked
    // when the event comes (the test passes either way, so it cannot flake).
    await new Promise((r) => setTimeout(r, 200));
    const sent = envelope(["yanis"]);
    await server.publish(sent);
    const res = await waiting;
    assert.ok(Date.now() - started < 10_000);
    assert.equal(res.body.frames.length, 1);
    assert.equal(res.body.frames[0].type, "event");
    assert.equal(res.body.frames[0].seq, 1);
    assert.deepEqual(res.body.frames[0].envelope.payload, sent.payload);
    assert.equal(res.body.seq, 1);
    await server.publish(envelope(["yanis"]));
    await server.publish(envelope(["yanis"]));
    const next = await poll(server, `session=${first.body.session}&after=1&timeout=5000`, {
      bearer,
    });
    assert.deepEqual(next.body.frames.map((f) => f.seq), [2, 3]);
    assert.equal(next.body.seq, 3);
  } finally {
    await server.close();
  }
});

Deno.test("a poll with after resumes with exactly the missed items in order", async () => {
  const server = await startServer();
  try {
    const bearer = await server.token("emma");
    // A first poll tells the epoch of emma's head, which lives on between polls.
    const first = await poll(server, "timeout=0", { bearer });
    const epoch = first.body.frames[0].epoch as string;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const e = envelope(["emma"]);
      ids.push((e.metadata as { id: string }).id);
      assert.equal((await server.publish(e)).status, 202);
    }
    const res = await poll(server, `after=2&epoch=${epoch}&timeout=0`, { bearer });
    const [welcome, ...events] = res.body.frames;
    assert.equal(welcome.type, "welcome");
    assert.equal(welcome.epoch, epoch);
    assert.equal(welcome.recovered, true);
    assert.deepEqual(events.map((f) => f.seq), [3, 4, 5]);
    assert.deepEqual(events.map((f) => f.envelope.metadata.id), ids.slice(2));
    assert.equal(res.body.seq, 5);

    // Without the epoch the same stored items resume exactly, but it is not recovered.
    const blind = await poll(server, "after=2&timeout=0", { bearer });
    const [blindWelcome, ...stored] = blind.body.frames;
    assert.equal(blindWelcome.type, "welcome");
    assert.equal(blindWelcome.recovered, false);
    assert.deepEqual(stored.map((f) => f.seq), [3, 4, 5]);
    assert.deepEqual(stored.map((f) => f.envelope.metadata.id), ids.slice(2));
    assert.equal(blind.body.seq, 5);
  } finally {
    await server.close();
  }
});

Deno.test("a poll whose after is behind the last answer gets the lost items again", async () => {
  const server = await startServer();
  try {
    const bearer = await server.token("camille");
    const first = await poll(server, "", { bearer });
    await server.publish(envelope(["camille"]));
    await server.publish(envelope(["camille"]));
    const lost = await poll(server, `session=${first.body.session}&after=0&timeout=5000`, {
      bearer,
    });
    assert.equal(lost.body.seq, 2);
    // That answer never reached the client: it polls again from 0.
    const again = await poll(server, `session=${first.body.session}&after=0&timeout=5000`, {
      bearer,
    });
    const events = again.body.frames.filter((f) => f.type === "event");
    assert.deepEqual(events.map((f) => f.seq), [1, 2]);
    assert.equal(again.body.seq, 2);
  } finally {
    await server.close();
  }
});

Deno.test("a poll ticket works once", async () => {
  const server = await startServer();
  try {
    const issued = await server.request("/v1/connect-tickets", {
      method: "POST",
      bearer: await server.token("camille"),
    });
    const ticket = issued.body.ticket as string;
    const first = await poll(server, `ticket=${ticket}&timeout=0`);
    assert.equal(first.status, 200);
    assert.equal(first.body.frames[0].user, "camille");
    const second = await poll(server, `ticket=${ticket}&timeout=0`);
    assert.equal(second.status, 401);
    assert.equal(second.body.error?.code, "unauthenticated");
  } finally {
    await server.close();
  }
});

Deno.test("a bad poll query is refused with a 400 naming the field, and no credentials with a 401", async () => {
  const server = await startServer();
  try {
    assert.equal((await poll(server, "timeout=0")).status, 401);
    const bearer = await server.token("camille");
    for (
      const [query, path] of [["timeout=-1", "timeout"], ["after=x", "after"], [
        "session=abc",
        "session",
      ]]
    ) {
      const res = await poll(server, query, { bearer });
      assert.equal(res.status, 400, query);
      assert.equal(res.body.error?.details?.[0].path, path, query);
    }
  } finally {
    await server.close();
  }
});

Deno.test("a poll timeout is capped by RELAIS_POLL_MAX_TIMEOUT_MS", async () => {
  const server = await startServer({ RELAIS_POLL_MAX_TIMEOUT_MS: "300" });
  try {
    const bearer = await server.token("camille");
    const first = await poll(server, "", { bearer });
    const started = Date.now();
    const res = await poll(server, `session=${first.body.session}&timeout=60000`, { bearer });
    const waited = Date.now() - started;
    assert.deepEqual(res.body.frames, []);
    assert.ok(waited >= 280 && waited < 5000, `answered after ${waited} ms`);
  } finally {
    await server.close();
  }
});

Deno.test("a poll session keeps the user online between polls and goes offline within two heartbeats after", async () => {
  const server = await startServer({ RELAIS_HEARTBEAT_MS: "300" });
  try {
    const bearer = await server.token("yanis");
    let session = (await poll(server, "", { bearer })).body.session;
    for (let i = 0; i < 4; i++) {
      assert.equal(presenceOf(server, "yanis"), "online");
      session = (await poll(server, `session=${session}&timeout=200`, { bearer })).body.session;
    }
    const stopped = Date.now();
    await eventually(() => presenceOf(server, "yanis") === "offline", 3000, "offline");
    const after = Date.now() - stopped;
    assert.ok(after >= 500, `offline after ${after} ms`);
    assert.equal(server.relais.hub.size(), 0);
  } finally {
    await server.close();
  }
});

Deno.test("an idle poll session ends with a close frame 4009", async () => {
  const server = await startServer({ RELAIS_HEARTBEAT_MS: "2000", RELAIS_IDLE_TIMEOUT_MS: "400" });
  try {
    const bearer = await server.token("emma");
    const first = await poll(server, "", { bearer });
    const res = await poll(server, `session=${first.body.session}&timeout=5000`, { bearer });
    assert.deepEqual(res.body.frames.map((f) => [f.type, f.code]), [["close", 4009]]);
    await eventually(() => presenceOf(server, "emma") === "offline", 2000, "offline");
    // The session is gone: the next poll starts a new one with a new welcome.
    const next = await poll(server, `session=${first.body.session}&timeout=0`, { bearer });
    assert.notEqual(next.body.session, first.body.session);
    assert.equal(next.body.frames[0].type, "welcome");
  } finally {
    await server.close();
  }
});

Deno.test("acks and presence work over HTTP for a polling client", async () => {
  const server = await startServer({ RELAIS_ACK_RETRY_BASE_MS: "100" });
  try {
    const bearer = await server.token("camille");
    const first = await poll(server, "", { bearer });
    const e = envelope(["camille"], { routing: { retry: { ack_required: true, limit: 50 } } });
    const id = (e.metadata as { id: string }).id;
    await server.publish(e);
    const got = await poll(server, `session=${first.body.session}&after=0&timeout=5000`, {
      bearer,
    });
    assert.equal(got.body.frames[0].envelope.metadata.id, id);
    const acked = await server.request(`/v1/me/notifications/${id}/ack`, {
      method: "POST",
      bearer,
    });
    assert.equal(acked.status, 200);
    // A redelivery sent before the ack landed (at least once: 100 ms after the delivery, and
    // a loaded machine may take longer to ack) may wait in the session; it is taken first.
    await poll(server, `session=${first.body.session}&after=1&timeout=0`, { bearer });
    // Once acked, no redelivery arrives (the next ones were due within this wait).
    const quiet = await poll(server, `session=${first.body.session}&after=1&timeout=1000`, {
      bearer,
    });
    assert.deepEqual(quiet.body.frames.filter((f) => f.type === "event"), []);
    const away = await server.request("/v1/me/presence", {
      bearer,
      body: { status: "away", session: first.body.session },
    });
    assert.equal(away.status, 200);
    await eventually(() => presenceOf(server, "camille") === "away", 2000, "away");
  } finally {
    await server.close();
  }
});

Deno.test("a poll session past RELAIS_MAX_SOCKET_BUFFER_BYTES ends with 4008, and the client resumes everything from its seq", async () => {
  const cap = 1024 * 1024;
  const server = await startServer({
    RELAIS_MAX_SOCKET_BUFFER_BYTES: String(cap),
    RELAIS_PUSH_BUDGET: "100000",
    RELAIS_RATE_EVENTS: "off",
  });
  try {
    const bearer = await server.token("emma");
    const first = await poll(server, "timeout=0", { bearer });
    const epoch = first.body.frames[0].epoch as string;
    // The client stops polling while 40 events of 60 KB (2.4 MB) arrive.
    const ids: string[] = [];
    const filler = "x".repeat(60_000);
    for (let i = 0; i < 40; i++) {
      const e = envelope(["emma"], {
        metadata: { type: "SYSTEM", source: "platform", topic: "platform.notice" },
        payload: { i, filler },
      });
      ids.push((e.metadata as { id: string }).id);
      assert.equal((await server.publish(e)).status, 202);
    }
    // Past the cap the session is ended and detached, as a socket would be.
    await eventually(() => server.relais.hub.ofUser("emma").length === 0, 5000, "the cut-off");

    const received: string[] = [];
    let query = `session=${first.body.session}&after=0&epoch=${epoch}&timeout=0`;
    const closes: number[] = [];
    for (let round = 0; round < 10 && received.length < ids.length; round++) {
      const res = await fetch(`${server.origin}/v1/poll?${query}`, {
        headers: { authorization: `Bearer ${bearer}` },
      });
      const text = await res.text();
      // One answer stays within the cap (plus its envelope and the close frame).
      const bytes = new TextEncoder().encode(text).byteLength;
      assert.ok(bytes <= cap + 1024, `an answer of ${bytes} bytes`);
      const body = JSON.parse(text) as Batch & { epoch: string };
      const events = body.frames.filter((f) => f.type === "event");
      received.push(...events.map((f) => f.envelope.metadata.id as string));
      const close = body.frames.find((f) => f.type === "close");
      if (close) {
        closes.push(close.code);
        assert.equal(body.frames.at(-1), close);
      }
      const welcome = body.frames.find((f) => f.type === "welcome");
      if (welcome) assert.equal(welcome.recovered, true);
      // The answer's seq is that of its last item: the next poll resumes right after it.
      if (events.length > 0) assert.equal(body.seq, events.at(-1)!.seq);
      query = `session=${body.session}&after=${body.seq}&epoch=${body.epoch}&timeout=0`;
    }
    assert.deepEqual(received, ids);
    assert.ok(closes.length > 0 && closes.every((c) => c === 4008), `closes ${closes}`);
  } finally {
    await server.close();
  }
});
