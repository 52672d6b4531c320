/** End-to-end delivery over real sockets on loopback. */

import assert from "node:assert/strict";
import {
  envelope,
  eventually,
  PUBLISH_KEY,
  SERVICE_KEY,
  startServer,
  type TestServer,
} from "../_support/server.ts";
import { connect, type Frame } from "../_support/ws_client.ts";

/** Whether `f` is the event frame of envelope `e`. */
const isEvent = (e: Record<string, unknown>) => (f: Frame) =>
  f.type === "event" && f.envelope.metadata.id === (e.metadata as { id: string }).id;

/** Waits until event `id`'s status counts one ack. */
async function ackedOnce(server: TestServer, id: string, timeoutMs: number) {
  await eventually(
    async () => {
      const res = await server.request(`/v1/events/${id}`, { apiKey: SERVICE_KEY });
      return res.body.acked === 1;
    },
    timeoutMs,
    "the ack",
  );
}

Deno.test("a connected user receives a published notification live, without its routing", async () => {
  const server = await startServer();
  try {
    const { client, welcome } = await server.login("camille");
    assert.equal(welcome.type, "welcome");
    assert.equal(welcome.user, "camille");
    assert.equal(welcome.seq, 0);
    const sent = envelope(["camille"]);
    const res = await server.publish(sent);
    assert.equal(res.status, 202);
    assert.equal(res.body.targeted, 1);
    const frame = await client.next((f) => f.type === "event");
    assert.equal(frame.seq, 1);
    assert.deepEqual(frame.envelope.payload, sent.payload);
    assert.equal(frame.envelope.metadata.id, (sent.metadata as { id: string }).id);
    assert.equal(frame.envelope.routing, undefined);
  } finally {
    await server.close();
  }
});

Deno.test("a reconnect with after gets exactly the missed durable items in order", async () => {
  const server = await startServer();
  try {
    const first = await server.login("yanis");
    await server.publish(envelope(["yanis"]));
    const seen = await first.client.next((f) => f.type === "event");
    assert.equal(seen.seq, 1);
    await first.client.close();

    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const e = envelope(["yanis"]);
      ids.push((e.metadata as { id: string }).id);
      assert.equal((await server.publish(e)).status, 202);
    }
    // Resuming within the welcome's epoch: exactly the missed items, provably complete.
    const again = await server.login("yanis", { after: 1, epoch: first.welcome.epoch });
    assert.equal(again.welcome.epoch, first.welcome.epoch);
    assert.equal(again.welcome.recovered, true);
    assert.equal(again.welcome.seq, 6);
    const replayed = [];
    for (let i = 0; i < 5; i++) replayed.push(await again.client.next((f) => f.type === "event"));
    assert.deepEqual(replayed.map((f) => f.seq), [2, 3, 4, 5, 6]);
    assert.deepEqual(replayed.map((f) => f.envelope.metadata.id), ids);
    const extra = await again.client.settled((f) => f.type === "event");
    assert.deepEqual(extra, []);
    await again.client.close();

    // Without the epoch the same durable items replay exactly, but it is not recovered.
    const blind = await server.login("yanis", { after: 1 });
    assert.equal(blind.welcome.recovered, false);
    assert.equal(blind.welcome.seq, 6);
    const stored = [];
    for (let i = 0; i < 5; i++) stored.push(await blind.client.next((f) => f.type === "event"));
    assert.deepEqual(stored.map((f) => f.seq), [2, 3, 4, 5, 6]);
    assert.deepEqual(stored.map((f) => f.envelope.metadata.id), ids);
    assert.deepEqual(await blind.client.settled((f) => f.type === "event"), []);
  } finally {
    await server.close();
  }
});

Deno.test("a repeated metadata.id is stored and delivered once", async () => {
  const server = await startServer();
  try {
    const { client } = await server.login("camille");
    const e = envelope(["camille"]);
    const a = await server.publish(e);
    const b = await server.publish(e);
    assert.equal(a.status, 202);
    assert.equal(b.status, 202);
    assert.deepEqual(b.body, a.body);
    await client.next((f) => f.type === "event");
    const inbox = await server.request("/v1/me/notifications", {
      bearer: await server.token("camille"),
    });
    assert.equal((inbox.body.items as unknown[]).length, 1);
    // Barrier: a second delivery of the repeated id would come before a later item.
    const later = envelope(["camille"]);
    await server.publish(later);
    assert.deepEqual(await client.before(isEvent(later), (f) => f.type === "event"), []);
  } finally {
    await server.close();
  }
});

Deno.test("an unacked item is redelivered on its backoff, then dead-lettered at its limit", async () => {
  const server = await startServer({ RELAIS_ACK_RETRY_BASE_MS: "100" });
  try {
    const { client } = await server.login("camille");
    const e = envelope(["camille"], {
      routing: { retry: { ack_required: true, limit: 2, backoff: "EXPONENTIAL" } },
    });
    const id = (e.metadata as { id: string }).id;
    await server.publish(e);
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      await client.next((f) => f.type === "event" && f.envelope.metadata.id === id, 2000);
      times.push(Date.now());
    }
    // First delivery, then redeliveries after about 100 ms and 200 ms more. Loose bounds:
    // a loaded machine delays timers, and receipt times at the client jitter both ways.
    const gaps = [times[1] - times[0], times[2] - times[1]];
    assert.ok(gaps[0] >= 60 && gaps[0] < 1000, `first gap ${gaps[0]} ms`);
    assert.ok(gaps[1] >= 150 && gaps[1] < 1500, `second gap ${gaps[1]} ms`);
    assert.ok(gaps[1] > gaps[0], "the backoff grows");

    const status = await eventually(
      async () => {
        const res = await server.request(`/v1/events/${id}`, { apiKey: SERVICE_KEY });
        return res.body.failed === 1 ? res.body : undefined;
      },
      3000,
      "the dead letter",
    );
    assert.equal(status.acked, 0);
    assert.equal(status.delivered, 1);
    assert.equal(status.acked_all, false);
    // Nothing is left to redeliver: no redelivery timer, and (barrier) no redelivery came
    // before a later item.
    const timers = server.relais.registry.inspect("user", "camille")?.timers ?? [];
    assert.deepEqual(timers.filter((t) => t.id === "nextDue"), []);
    const later = envelope(["camille"]);
    await server.publish(later);
    assert.deepEqual(await client.before(isEvent(later), (f) => f.type === "event"), []);

    const dead = await server.request("/v1/admin/dead-letters", { apiKey: SERVICE_KEY });
    const letters = dead.body.items as { id: string; user: string; attempts: number }[];
    assert.equal(letters.length, 1);
    assert.equal(letters[0].id, id);
    assert.equal(letters[0].user, "camille");
    assert.equal(letters[0].attempts, 2);
  } finally {
    await server.close();
  }
});

Deno.test("an unacked item is redelivered on the next connection, and an ack stops it", async () => {
  const server = await startServer({ RELAIS_ACK_RETRY_BASE_MS: "60000" });
  try {
    const first = await server.login("yanis");
    const e = envelope(["yanis"], { routing: { retry: { ack_required: true } } });
    const id = (e.metadata as { id: string }).id;
    await server.publish(e);
    await first.client.next((f) => f.type === "event");
    await first.client.close();

    // The client saw seq 1 but never acked it: the next connection gets it again.
    const second = await server.login("yanis", { after: 1 });
    const again = await second.client.next((f) => f.type === "event");
    assert.equal(again.envelope.metadata.id, id);
    second.client.send({ type: "ack", id });
    await ackedOnce(server, id, 2000);
    await second.client.close();

    const third = await server.login("yanis", { after: 1 });
    // Barrier: a redelivery on connection comes before a later item.
    const later = envelope(["yanis"]);
    await server.publish(later);
    assert.deepEqual(await third.client.before(isEvent(later), (f) => f.type === "event"), []);
  } finally {
    await server.close();
  }
});

Deno.test("acks from every target mark the message acked", async () => {
  const server = await startServer();
  try {
    const a = await server.login("camille");
    const b = await server.login("yanis");
    const e = envelope(["camille", "yanis", "emma"], {
      routing: { retry: { ack_required: true } },
    });
    const id = (e.metadata as { id: string }).id;
    await server.publish(e);
    await a.client.next((f) => f.type === "event");
    await b.client.next((f) => f.type === "event");
    a.client.send({ type: "ack", id });
    b.client.send({ type: "ack", id });
    const partial = await eventually(
      async () => {
        const res = await server.request(`/v1/events/${id}`, { apiKey: SERVICE_KEY });
        return res.body.acked === 2 ? res.body : undefined;
      },
      2000,
      "two acks",
    );
    assert.equal(partial.acked_all, false);
    assert.deepEqual(partial.pending_users, ["emma"]);
    assert.equal(partial.targeted, 3);

    // emma acks over HTTP without ever connecting.
    const res = await server.request(`/v1/me/notifications/${id}/ack`, {
      method: "POST",
      bearer: await server.token("emma"),
    });
    assert.equal(res.status, 200);
    const done = await server.request(`/v1/events/${id}`, { apiKey: SERVICE_KEY });
    assert.equal(done.body.acked, 3);
    assert.equal(done.body.acked_all, true);
    assert.deepEqual(done.body.pending_users, []);
  } finally {
    await server.close();
  }
});

Deno.test("an expired item is never delivered, live or on resume", async () => {
  const server = await startServer();
  try {
    const { client, welcome } = await server.login("camille");
    const past = new Date(Date.now() - 60_000).toISOString();
    const expired = envelope(["camille"], {
      metadata: { timestamp: new Date(Date.now() - 120_000).toISOString(), expiration: past },
    });
    assert.equal((await server.publish(expired)).status, 202);
    const soon = envelope(["camille"], {
      metadata: { expiration: new Date(Date.now() + 400).toISOString() },
    });
    await server.publish(soon);
    const live = await client.next((f) => f.type === "event");
    assert.equal(live.envelope.metadata.id, (soon.metadata as { id: string }).id);
    assert.deepEqual(await client.settled((f) => f.type === "event"), []);
    await client.close();

    // Measures time: `soon` must expire by the wall clock before the resume.
    await new Promise((r) => setTimeout(r, 500));
    const again = await server.login("camille", { after: 0, epoch: welcome.epoch });
    assert.equal(again.welcome.epoch, welcome.epoch);
    assert.equal(again.welcome.recovered, true);
    // Barrier: the first event after the welcome is the next live item, nothing expired.
    const next = envelope(["camille"]);
    await server.publish(next);
    const first = await again.client.next((f) => f.type === "event");
    assert.equal(first.envelope.metadata.id, (next.metadata as { id: string }).id);
  } finally {
    await server.close();
  }
});

Deno.test("recent REALTIME items resume, older ones answer recovered false", async () => {
  const server = await startServer({ RELAIS_RECENT_WINDOW_MS: "1000" });
  try {
    const realtime = (user = "emma") =>
      envelope([user], {
        metadata: {
          type: "REALTIME",
          source: "activities",
          topic: "activity",
          operation: "update",
        },
        payload: { after: { id: 42, status: "PUBLISHED" } },
      });
    // A head exists while emma's actor lives: connect once to get its epoch.
    const first = await server.login("emma");
    const epoch = first.welcome.epoch;
    assert.equal(first.welcome.seq, 0);
    await first.client.close();

    await server.publish(realtime());
    const fresh = await server.login("emma", { after: 0, epoch });
    assert.equal(fresh.welcome.epoch, epoch);
    assert.equal(fresh.welcome.recovered, true);
    assert.equal((await fresh.client.next((f) => f.type === "event")).seq, 1);
    await fresh.client.close();

    // Measures time: the item must leave the 1 s recent window by the wall clock.
    await new Promise((r) => setTimeout(r, 1100));
    await server.publish(realtime());
    const late = await server.login("emma", { after: 0, epoch });
    assert.equal(late.welcome.epoch, epoch);
    assert.equal(late.welcome.recovered, false);
    // What is still in the window is sent all the same.
    assert.equal((await late.client.next((f) => f.type === "event")).seq, 2);

    // lucas has no head: a REALTIME item for him is kept nowhere, so a resume never gets
    // it and is not recovered. The durable item after it is the barrier.
    assert.equal((await server.publish(realtime("lucas"))).status, 202);
    const durable = envelope(["lucas"]);
    assert.equal((await server.publish(durable)).status, 202);
    const headless = await server.login("lucas", { after: 0 });
    assert.equal(headless.welcome.recovered, false);
    const replayed = await headless.client.next((f) => f.type === "event");
    assert.deepEqual(
      [replayed.seq, replayed.envelope.metadata.id],
      [1, (durable.metadata as { id: string }).id],
    );
  } finally {
    await server.close();
  }
});

Deno.test("invalid envelopes get 400 naming the field", async () => {
  const server = await startServer();
  try {
    const cases: [unknown, string][] = [
      [
        { ...envelope(["x"]), metadata: { ...envelope(["x"]).metadata as object, id: "nope" } },
        "metadata.id",
      ],
      [
        { ...envelope(["x"]), metadata: { ...envelope(["x"]).metadata as object, type: "SPAM" } },
        "metadata.type",
      ],
      [envelope([]), "routing.audience.targets"],
      [{ ...envelope(["x"]), extra: 1 }, "extra"],
      [envelope(["x"], { payload: { big: "x".repeat(70_000) } }), "payload"],
    ];
    for (const [body, path] of cases) {
      const res = await server.publish(body);
      assert.equal(res.status, res.status === 413 ? 413 : 400, JSON.stringify(res.body));
      const error = res.body.error as { code: string; details?: { path: string }[] };
      if (res.status === 400) {
        assert.equal(error.code, "validation_failed");
        assert.ok(
          error.details?.some((d) => d.path === path),
          `${path} in ${JSON.stringify(error)}`,
        );
      }
    }
    const raw = await fetch(`${server.origin}/v1/events`, {
      method: "POST",
      headers: { "x-api-key": SERVICE_KEY, "content-type": "application/json" },
      body: "{not json",
    });
    assert.equal(raw.status, 400);
    assert.equal((await raw.json()).error.code, "invalid_json");
    const noKey = await server.publish(envelope(["x"]), "wrong_key_0123456789abcdef");
    assert.equal(noKey.status, 401);
    const adminWithPublishKey = await server.request("/v1/admin/actors", { apiKey: PUBLISH_KEY });
    assert.equal(adminWithPublishKey.status, 403);
  } finally {
    await server.close();
  }
});

Deno.test("a bad token closes the socket with 4001", async () => {
  const server = await startServer();
  try {
    const client = await connect(server.wsUrl);
    client.send({ type: "hello", token: "not.a.jwt" });
    assert.equal((await client.closed).code, 4001);
    const expired = await connect(server.wsUrl);
    expired.send({ type: "hello", token: await server.token("camille", { ttlSeconds: -10 }) });
    assert.equal((await expired.closed).code, 4001);
  } finally {
    await server.close();
  }
});

Deno.test("malformed frames get error frames and the socket keeps working", async () => {
  const server = await startServer();
  try {
    const { client } = await server.login("camille");
    client.sendRaw("{broken");
    assert.equal((await client.next()).code, "invalid_json");
    client.send({ type: "ack" });
    const missing = await client.next();
    assert.equal(missing.code, "validation_failed");
    client.send({ type: "nope", ref: "r1" });
    const unknown = await client.next();
    assert.equal(unknown.code, "validation_failed");
    assert.equal(unknown.ref, "r1");
    client.send({ type: "ack", id: "00000000-0000-4000-8000-000000000000", ref: "r2" });
    const notFound = await client.next();
    assert.equal(notFound.code, "not_found");
    assert.equal(notFound.ref, "r2");
    client.send({ type: "ping", ref: "p" });
    assert.deepEqual(await client.next(), { type: "pong", ref: "p" });
    await server.publish(envelope(["camille"]));
    assert.equal((await client.next()).type, "event");
  } finally {
    await server.close();
  }
});

Deno.test("an oversized frame closes the socket with 4008", async () => {
  const server = await startServer({ RELAIS_MAX_FRAME_BYTES: "1024" });
  try {
    const { client } = await server.login("camille");
    client.send({ type: "ping", ref: "x".repeat(2000) });
    assert.equal((await client.closed).code, 4008);
  } finally {
    await server.close();
  }
});

Deno.test("an item of a large audience, sent before its entry is written, can be acked at once", async () => {
  const server = await startServer({ RELAIS_ACK_RETRY_BASE_MS: "60000" });
  try {
    // Last in the fan-out's order: the job writes her entry after everyone else's.
    const { client } = await server.login("zz-yanis");
    const others = Array.from({ length: 1500 }, (_, i) => `member-${String(i).padStart(4, "0")}`);
    const e = envelope([...others, "zz-yanis"], { routing: { retry: { ack_required: true } } });
    const id = (e.metadata as { id: string }).id;
    assert.equal((await server.publish(e)).status, 202);
    await client.next((f) => f.type === "event");
    client.send({ type: "ack", id, ref: "a1" });
    await ackedOnce(server, id, 10_000);
    assert.deepEqual(client.received.filter((f) => f.type === "error"), []);
  } finally {
    await server.close();
  }
});
