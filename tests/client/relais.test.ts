/** The SDK's client with fake transports: reconnect, resume, de-duplication, fallback, idle. */

import assert from "node:assert/strict";
import {
  createRelais,
  type RelaisClient,
  type RelaisOptions,
  type StatusChange,
} from "../../src/client/relais.ts";
import type { TransportContext } from "../../src/client/transport.ts";
import type { ClientFrame, ServerFrame, TransportKind } from "../../src/client/types.ts";
import { eventually } from "../_support/server.ts";
import { heldTimers } from "./_timers.ts";

interface Fake {
  kind: TransportKind;
  context: TransportContext;
  sent: ClientFrame[];
  closed: boolean;
  frame(frame: ServerFrame, position?: number): void;
  welcome(seq: number, recovered?: boolean, heartbeatMs?: number, epoch?: string): void;
  drop(code?: number): void;
}

function fakes() {
  const opened: Fake[] = [];
  const factory = (kind: TransportKind) => (context: TransportContext) => {
    const fake: Fake = {
      kind,
      context,
      sent: [],
      closed: false,
      frame: (frame, position) => context.events.frame(frame, position),
      welcome(seq, recovered = context.after !== undefined, heartbeatMs, epoch = "e1") {
        fake.frame({
          type: "welcome",
          user: "camille",
          session: `s${opened.length}`,
          epoch,
          seq,
          recovered,
          ...(heartbeatMs ? { heartbeat_ms: heartbeatMs } : {}),
        });
      },
      drop: (code = 1006) => context.events.closed({ code, reason: "dropped" }),
    };
    opened.push(fake);
    return {
      kind,
      send(frame: ClientFrame) {
        fake.sent.push(frame);
        return kind === "ws";
      },
      close() {
        fake.closed = true;
      },
    };
  };
  return {
    opened,
    factories: { ws: factory("ws"), sse: factory("sse"), poll: factory("poll") },
  };
}

function event(seq: number, id: string): ServerFrame {
  return {
    type: "event",
    seq,
    envelope: {
      metadata: {
        id,
        priority: "NORMAL",
        type: "NOTIFICATION",
        emitter: "test",
        source: "test",
        topic: "test.topic",
      },
      payload: { n: seq },
    },
  } as ServerFrame;
}

function client(options: Partial<RelaisOptions> = {}) {
  const transports = fakes();
  const statuses: StatusChange[] = [];
  const relais = createRelais({
    url: "http://relais.test",
    token: "t",
    transportFactories: transports.factories,
    backoff: { baseMs: 5, maxMs: 40 },
    random: () => 1,
    watchBrowser: false,
    fetch: () => Promise.reject(new Error("no HTTP in this test")),
    ...options,
  });
  relais.on("status", (s) => statuses.push(s));
  return { relais, opened: transports.opened, statuses };
}

async function opened(list: Fake[], count: number): Promise<Fake> {
  return await eventually(() => list.length >= count && list[count - 1], 2000, `${count} opens`);
}

function ids(relais: RelaisClient) {
  const seen: string[] = [];
  relais.on("event", (e) => seen.push(e.envelope.metadata.id));
  return seen;
}

Deno.test("the client resumes after the last seq it saw when it reconnects", async () => {
  const { relais, opened: list } = client();
  const seen = ids(relais);
  relais.connect();
  const first = await opened(list, 1);
  assert.equal(first.context.after, undefined);
  first.welcome(4);
  assert.equal(relais.state, "open");
  assert.equal(relais.position, 4);
  first.frame(event(5, "a"));
  first.frame(event(6, "b"));
  first.drop();
  assert.equal(relais.state, "reconnecting");
  const second = await opened(list, 2);
  assert.equal(second.kind, "ws");
  assert.equal(second.context.after, 6);
  second.welcome(7, true);
  second.frame(event(7, "c"));
  assert.deepEqual(seen, ["a", "b", "c"]);
  assert.equal(relais.position, 7);
  relais.close();
});

Deno.test("the client sends the epoch of its position back when it resumes", async () => {
  const { relais, opened: list } = client();
  relais.connect();
  const first = await opened(list, 1);
  assert.equal(first.context.epoch, undefined);
  first.welcome(4, false, undefined, "e1");
  assert.equal(relais.epoch, "e1");
  first.frame(event(5, "a"));
  first.drop();
  const second = await opened(list, 2);
  assert.deepEqual([second.context.after, second.context.epoch], [5, "e1"]);
  // Another epoch after a server restart: the position is now one of that epoch.
  second.welcome(5, true, undefined, "e2");
  assert.equal(relais.epoch, "e2");
  second.drop();
  const third = await opened(list, 3);
  assert.deepEqual([third.context.after, third.context.epoch], [5, "e2"]);
  // A poll answer carries the epoch beside the position it reached.
  third.welcome(5, true, undefined, "e2");
  third.context.events.advance(8, "e3");
  assert.deepEqual([relais.position, relais.epoch], [8, "e3"]);
  third.drop();
  const fourth = await opened(list, 4);
  assert.deepEqual([fourth.context.after, fourth.context.epoch], [8, "e3"]);
  relais.close();
});

Deno.test("the client starts from a given position and epoch", async () => {
  const { relais, opened: list } = client({ after: 3, epoch: "e0" });
  relais.connect();
  const t = await opened(list, 1);
  assert.deepEqual([t.context.after, t.context.epoch], [3, "e0"]);
  relais.close();
});

Deno.test("the client drops a duplicate event by id, and still hands over new ids", async () => {
  const { relais, opened: list } = client();
  const seen = ids(relais);
  relais.connect();
  const t = await opened(list, 1);
  t.welcome(0);
  t.frame(event(1, "a"));
  t.frame(event(1, "a"));
  t.frame(event(2, "b"));
  // A redelivery of an item the client had already seen, after a reconnect.
  t.drop();
  const again = await opened(list, 2);
  again.welcome(2, true);
  again.frame(event(1, "a"));
  again.frame(event(3, "c"));
  assert.deepEqual(seen, ["a", "b", "c"]);
  relais.close();
});

Deno.test("the client emits resync when a resume could not be served in full", async () => {
  const { relais, opened: list } = client({ after: 3 });
  const resyncs: number[] = [];
  relais.on("resync", (r) => resyncs.push(r.seq));
  relais.connect();
  const t = await opened(list, 1);
  assert.equal(t.context.after, 3);
  t.welcome(900, false);
  assert.deepEqual(resyncs, [900]);
  assert.equal(relais.position, 900);
  relais.close();
});

Deno.test("the client takes the stream position a transport reads beside its frames", async () => {
  const { relais, opened: list } = client({ transports: ["sse"] });
  relais.connect();
  const t = await opened(list, 1);
  t.frame({ type: "welcome", user: "u", session: "s", epoch: "e1", seq: 2, recovered: false }, 2);
  t.frame({ type: "typing", conversation: "c", user: "v" }, 5);
  assert.equal(relais.position, 5);
  t.context.events.advance(8);
  assert.equal(relais.position, 8);
  relais.close();
});

Deno.test("the client falls back from a blocked WebSocket to SSE, then to polling", async () => {
  const { relais, opened: list, statuses } = client();
  relais.connect();
  for (let i = 1; i <= 4; i++) (await opened(list, i)).drop();
  const fifth = await opened(list, 5);
  assert.deepEqual(list.map((t) => t.kind), ["ws", "ws", "sse", "sse", "poll"]);
  fifth.welcome(0);
  assert.equal(relais.state, "open");
  assert.equal(relais.transport, "poll");
  const delays = statuses.filter((s) => s.state === "reconnecting").map((s) => s.delayMs);
  assert.deepEqual(delays, [5, 5, 20, 5], "fallbacks at once, retries with a growing backoff");
  relais.close();
});

Deno.test("the client backs off exponentially while the server stays unreachable", async () => {
  const { relais, opened: list, statuses } = client({ transports: ["ws"] });
  relais.connect();
  for (let i = 1; i <= 5; i++) (await opened(list, i)).drop();
  await opened(list, 6);
  const delays = statuses.filter((s) => s.state === "reconnecting").map((s) => s.delayMs);
  assert.deepEqual(delays, [5, 10, 20, 40, 40], "doubling, capped at maxMs");
  relais.close();
});

Deno.test("a transport that is not welcomed in time counts as failed", async () => {
  const { relais, opened: list } = client({ connectTimeoutMs: 50 });
  relais.connect();
  const first = await opened(list, 1);
  await opened(list, 2);
  assert.equal(first.closed, true);
  relais.close();
});

Deno.test("the client pings a quiet WebSocket, answers server pings, and drops a dead one", async () => {
  const { relais, opened: list } = client();
  relais.connect();
  const t = await opened(list, 1);
  t.welcome(0, false, 60);
  t.frame({ type: "ping" });
  assert.deepEqual(t.sent, [{ type: "pong" }]);
  await eventually(() => t.sent.some((f) => f.type === "ping"), 2000, "a client ping");
  // Nothing comes back: within two heartbeats and a grace the connection is given up.
  const next = await opened(list, 2);
  assert.equal(t.closed, true);
  assert.equal(next.kind, "ws");
  relais.close();
});

Deno.test("after an idle close the client waits for activity, then resumes", async () => {
  const timers = heldTimers();
  const { relais, opened: list } = client({ timers });
  relais.connect();
  const t = await opened(list, 1);
  t.welcome(3);
  assert.notDeepEqual(timers.pending(), [], "open, it checks liveness on a timer");
  t.drop(4009);
  assert.equal(relais.state, "dormant");
  // Only a timer could reconnect by itself, and none is left.
  assert.deepEqual(timers.pending(), [], "nothing scheduled while dormant");
  assert.equal(list.length, 1, "no reconnection while dormant");
  relais.activity();
  const next = await opened(list, 2);
  assert.equal(next.context.after, 3);
  relais.close();
});

Deno.test("actions go over the WebSocket when it is open", async () => {
  const { relais, opened: list } = client();
  relais.connect();
  const t = await opened(list, 1);
  t.welcome(0);
  await relais.ack("a");
  await relais.read("a");
  await relais.setPresence("away");
  let answered = false;
  const sent = relais.send("conv", "salut").finally(() => answered = true);
  await relais.typing("conv");
  await relais.typing("conv");
  const send = t.sent[3] as Extract<ClientFrame, { type: "msg.send" }>;
  assert.deepEqual(t.sent, [
    { type: "ack", id: "a", ref: "ack.1" },
    { type: "read", id: "a", ref: "read.2" },
    { type: "presence.set", status: "away" },
    {
      type: "msg.send",
      conversation: "conv",
      text: "salut",
      client_id: send.client_id,
      ref: "send.3",
    },
    { type: "typing", conversation: "conv", ref: "typing.4" },
  ]);
  // A message is sent once its own copy comes back (another one's does not count).
  const msg = { type: "msg", conversation: "conv", seq: 1, text: "salut", at: "" } as const;
  t.frame({ ...msg, from: "ana", client_id: send.client_id });
  t.frame({ ...msg, from: "camille", client_id: "other" });
  await Promise.resolve();
  assert.equal(answered, false);
  t.frame({ ...msg, from: "camille", client_id: send.client_id });
  assert.equal(await sent, send.client_id);
  relais.close();
});

Deno.test("an error frame with a message's ref rejects its send, and only that one", async () => {
  const { relais, opened: list } = client();
  const errors: unknown[] = [];
  relais.on("error", (e) => errors.push(e));
  relais.connect();
  const t = await opened(list, 1);
  t.welcome(0);
  const refused = relais.send("conv", "one", { clientId: "k1" });
  const kept = relais.send("conv", "two", { clientId: "k2" });
  const ref = (t.sent[0] as { ref: string }).ref;
  t.frame({ type: "error", code: "rate_limited", message: "Slow down", ref, retry_after_ms: 900 });
  await assert.rejects(refused, { name: "ActionError", code: "rate_limited", retryAfterMs: 900 });
  t.frame({
    type: "msg",
    conversation: "conv",
    seq: 1,
    from: "camille",
    text: "two",
    at: "",
    client_id: "k2",
  });
  assert.equal(await kept, "k2");
  // The application still hears of the error.
  assert.equal(errors.length, 1);
  relais.close();
});

Deno.test("a message unanswered when its connection drops is sent again after the next welcome", async () => {
  const { relais, opened: list } = client();
  relais.connect();
  const first = await opened(list, 1);
  first.welcome(0);
  const sent = relais.send("conv", "hello", { clientId: "k1" });
  first.drop();
  const second = await opened(list, 2);
  assert.deepEqual(second.sent, []);
  second.welcome(0);
  const again = second.sent[0] as Extract<ClientFrame, { type: "msg.send" }>;
  assert.equal(again.client_id, "k1");
  assert.notEqual(again.ref, (first.sent[0] as { ref: string }).ref);
  second.frame({
    type: "msg",
    conversation: "conv",
    seq: 1,
    from: "camille",
    text: "hello",
    at: "",
    client_id: "k1",
  });
  assert.equal(await sent, "k1");
  relais.close();
});

Deno.test("each delivery of an item the application acked is answered with the ack again, unseen", async () => {
  const { relais, opened: list } = client();
  const seen = ids(relais);
  const errors: unknown[] = [];
  relais.on("error", (e) => errors.push(e));
  relais.connect();
  const t = await opened(list, 1);
  t.welcome(0);
  t.frame(event(1, "a"));
  t.frame(event(2, "b"));
  await relais.ack("a");
  t.sent.length = 0;
  t.frame(event(1, "a"));
  t.frame(event(2, "b"));
  assert.deepEqual(seen, ["a", "b"]);
  assert.deepEqual(t.sent.map((f) => [f.type, (f as { id?: string }).id]), [["ack", "a"]]);
  // Refused because the first ack took meanwhile: the SDK's own business.
  const ref = (t.sent[0] as { ref: string }).ref;
  t.frame({ type: "error", code: "not_found", message: 'Unknown item "a"', ref });
  assert.deepEqual(errors, []);
  relais.close();
});

Deno.test("actions go over HTTP with the token when the transport is not a WebSocket", async () => {
  const calls: { method: string; url: string; auth: string | null; body: unknown }[] = [];
  const { relais, opened: list } = client({
    transports: ["poll"],
    fetch: (input, init) => {
      const headers = new Headers(init?.headers);
      calls.push({
        method: init?.method ?? "GET",
        url: String(input),
        auth: headers.get("authorization"),
        body: init?.body ? JSON.parse(String(init.body)) : undefined,
      });
      return Promise.resolve(Response.json({ ok: true }));
    },
  });
  relais.connect();
  const t = await opened(list, 1);
  t.welcome(0);
  await relais.ack("a/b");
  await relais.setPresence("away");
  await relais.send("c1", "hi", { clientId: "k1" });
  assert.deepEqual(calls, [
    {
      method: "POST",
      url: "http://relais.test/v1/me/notifications/a%2Fb/ack",
      auth: "Bearer t",
      body: undefined,
    },
    {
      method: "POST",
      url: "http://relais.test/v1/me/presence",
      auth: "Bearer t",
      body: { status: "away", session: "s1" },
    },
    {
      method: "POST",
      url: "http://relais.test/v1/conversations/c1/messages",
      auth: "Bearer t",
      body: { text: "hi", client_id: "k1" },
    },
  ]);
  relais.close();
});

Deno.test("a failing listener does not stop the others", async () => {
  const { relais, opened: list } = client();
  const seen = ids(relais);
  relais.on("event", () => {
    throw new Error("listener bug");
  });
  const seenAfter = ids(relais);
  const error = console.error;
  console.error = () => {};
  try {
    relais.connect();
    const t = await opened(list, 1);
    t.welcome(0);
    t.frame(event(1, "a"));
  } finally {
    console.error = error;
  }
  assert.deepEqual(seen, ["a"]);
  assert.deepEqual(seenAfter, ["a"]);
  relais.close();
});

Deno.test("close stops reconnecting", async () => {
  const timers = heldTimers();
  const { relais, opened: list } = client({ timers });
  relais.connect();
  const t = await opened(list, 1);
  t.welcome(0);
  relais.close();
  assert.equal(t.closed, true);
  assert.equal(relais.state, "closed");
  // Only a timer could reconnect by itself, and none is left.
  assert.deepEqual(timers.pending(), []);
  assert.equal(list.length, 1);
});

Deno.test("close cancels a reconnection already scheduled", async () => {
  const timers = heldTimers();
  const { relais, opened: list, statuses } = client({ timers });
  relais.connect();
  const t = await opened(list, 1);
  t.welcome(0);
  t.drop();
  assert.equal(relais.state, "reconnecting");
  const { delayMs } = statuses.at(-1)!;
  assert.deepEqual(timers.pending(), [delayMs], "the retry, after its backoff");
  relais.close();
  assert.equal(relais.state, "closed");
  assert.deepEqual(timers.pending(), []);
  assert.equal(list.length, 1);
});
