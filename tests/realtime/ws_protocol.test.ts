/**
 * The WebSocket protocol's deadlines, checked by one shared sweep instead of timers per socket.
 *
 * These tests measure time themselves: the deadlines are wall-clock durations, asserted in ms.
 */

import assert from "node:assert/strict";
import type { UserPrincipal } from "../../src/auth/principal.ts";
import type { Tickets } from "../../src/auth/tickets.ts";
import type { UserAuth } from "../../src/auth/user_auth.ts";
import type { Outlet } from "../../src/realtime/hub.ts";
import type { Sessions } from "../../src/realtime/session.ts";
import {
  createWsProtocol,
  sweepIntervalMs,
  type WsProtocolDeps,
} from "../../src/realtime/ws_protocol.ts";
import { eventually } from "../_support/eventually.ts";

interface FakeOutlet extends Outlet {
  sent: Record<string, unknown>[];
  closedWith: Promise<{ code: number; reason: string; at: number }>;
}

function fakeOutlet(): FakeOutlet {
  let resolve!: (v: { code: number; reason: string; at: number }) => void;
  const closedWith = new Promise<{ code: number; reason: string; at: number }>((r) => resolve = r);
  const sent: Record<string, unknown>[] = [];
  return {
    transport: "ws",
    sent,
    closedWith,
    send: (text) => void sent.push(JSON.parse(text)),
    close: (code, reason) => resolve({ code, reason, at: Date.now() }),
  };
}

function protocolWith(overrides: Partial<WsProtocolDeps> & { ttlMs?: number } = {}) {
  const detached: string[] = [];
  let attached = 0;
  const sessions = {
    attach: (user: UserPrincipal) =>
      Promise.resolve({
        connId: `c${++attached}`,
        user: user.id,
        epoch: "e1",
        seq: 0,
        recovered: false,
      }),
    epochOf: () => "e1",
    detach: (connId: string) => void detached.push(connId),
    notify: () => {},
    ack: () => Promise.resolve(true),
    read: () => Promise.resolve(true),
    presence: () => true,
  } satisfies Sessions;
  const auth = {
    verifyToken: (token: string): Promise<UserPrincipal> =>
      Promise.resolve({
        kind: "user",
        id: token,
        roles: [],
        structures: [],
        ...(overrides.ttlMs !== undefined ? { expiresAt: Date.now() + overrides.ttlMs } : {}),
      }),
  } as unknown as UserAuth;
  const protocol = createWsProtocol({
    sessions,
    auth,
    tickets: {} as Tickets,
    maxFrameBytes: 65_536,
    helloTimeoutMs: 10_000,
    onError: (message, error) => {
      throw new Error(`${message}: ${error}`);
    },
    ...overrides,
  });
  return { protocol, detached };
}

const until = (check: () => boolean) => eventually(check, 2000);

Deno.test("the sweep runs at a quarter of the shortest timeout, between 10 and 250 ms", () => {
  assert.equal(sweepIntervalMs({ helloTimeoutMs: 10_000, heartbeatMs: 25_000 }), 250);
  assert.equal(sweepIntervalMs({ helloTimeoutMs: 10_000, heartbeatMs: 200 }), 50);
  assert.equal(sweepIntervalMs({ helloTimeoutMs: 400, heartbeatMs: 0, idleTimeoutMs: 0 }), 100);
  assert.equal(sweepIntervalMs({ helloTimeoutMs: 800, idleTimeoutMs: 600 }), 150);
  assert.equal(sweepIntervalMs({ helloTimeoutMs: 8, heartbeatMs: 4 }), 10);
});

Deno.test("a socket without hello is closed with 4001 by the sweep, which stops with the last socket", async () => {
  const { protocol } = protocolWith({ helloTimeoutMs: 120 });
  const outlet = fakeOutlet();
  const opened = Date.now();
  assert.equal(protocol.sweeping(), false);
  protocol.open(outlet);
  assert.equal(protocol.size(), 1);
  assert.equal(protocol.sweeping(), true);
  const closed = await outlet.closedWith;
  assert.equal(closed.code, 4001);
  assert.match(closed.reason, /hello/i);
  assert.ok(closed.at - opened >= 115 && closed.at - opened < 1000, `${closed.at - opened} ms`);
  assert.equal(protocol.size(), 0);
  assert.equal(protocol.sweeping(), false);
});

Deno.test("a silent socket gets one ping after a heartbeat and is dropped after two, detached", async () => {
  const { protocol, detached } = protocolWith({ heartbeatMs: 100 });
  const outlet = fakeOutlet();
  const conn = protocol.open(outlet);
  conn.message(JSON.stringify({ type: "hello", token: "camille" }));
  const helloAt = Date.now();
  await until(() => outlet.sent.some((f) => f.type === "ping"));
  assert.ok(Date.now() - helloAt >= 95, `ping after ${Date.now() - helloAt} ms`);
  const closed = await outlet.closedWith;
  assert.equal(closed.code, 1001);
  assert.ok(closed.at - helloAt >= 195, `dropped after ${closed.at - helloAt} ms`);
  assert.equal(outlet.sent.filter((f) => f.type === "ping").length, 1);
  assert.deepEqual(detached, ["c1"]);
});

Deno.test("an idle socket is closed with 4009 while pongs keep it alive", async () => {
  const { protocol } = protocolWith({ heartbeatMs: 60, idleTimeoutMs: 300 });
  const outlet = fakeOutlet();
  const conn = protocol.open(outlet);
  conn.message(JSON.stringify({ type: "hello", token: "camille" }));
  const helloAt = Date.now();
  let done = false;
  outlet.closedWith.then(() => done = true);
  while (!done) {
    conn.message(JSON.stringify({ type: "pong" }));
    await new Promise((r) => setTimeout(r, 20)); // measures time: a pong every 20 ms
  }
  const closed = await outlet.closedWith;
  assert.equal(closed.code, 4009);
  assert.ok(closed.at - helloAt >= 295 && closed.at - helloAt < 2000, `${closed.at - helloAt} ms`);
});

Deno.test("an expiring token closes the socket with 4001 unless a new hello refreshes it", async () => {
  const { protocol } = protocolWith({ ttlMs: 300, helloTimeoutMs: 200 });
  const kept = fakeOutlet();
  const lapsed = fakeOutlet();
  const keptConn = protocol.open(kept);
  protocol.open(lapsed).message(JSON.stringify({ type: "hello", token: "ana" }));
  keptConn.message(JSON.stringify({ type: "hello", token: "bob" }));
  const helloAt = Date.now();
  await new Promise((r) => setTimeout(r, 150)); // measures time: refresh halfway through the ttl
  keptConn.message(JSON.stringify({ type: "hello", token: "bob" }));
  const closed = await lapsed.closedWith;
  assert.equal(closed.code, 4001);
  assert.match(closed.reason, /expired/i);
  assert.ok(closed.at - helloAt >= 295 && closed.at - helloAt < 1500, `${closed.at - helloAt} ms`);
  assert.equal(protocol.size(), 1);
  // The refreshed one lapses in turn.
  assert.equal((await kept.closedWith).code, 4001);
  assert.equal(protocol.size(), 0);
  assert.equal(protocol.sweeping(), false);
});

Deno.test("a frame arriving after the token expired closes the socket before it is handled", async () => {
  // A sweep too slow to notice first: only the frame's own check can close it.
  const { protocol } = protocolWith({ ttlMs: 40, helloTimeoutMs: 60_000 });
  const outlet = fakeOutlet();
  const conn = protocol.open(outlet);
  conn.message(JSON.stringify({ type: "hello", token: "ana" }));
  await new Promise((r) => setTimeout(r, 60)); // measures time: past the 40 ms ttl
  conn.message(JSON.stringify({ type: "ping", ref: "late" }));
  const closed = await outlet.closedWith;
  assert.equal(closed.code, 4001);
  assert.ok(!outlet.sent.some((f) => f.type === "pong"), "a pong answered an expired token");
});

Deno.test("a socket past its frame rate drops further frames and is closed with 4008 once quiet", async () => {
  const { protocol, detached } = protocolWith({ frameRate: { burst: 5, perSecond: 1 } });
  const outlet = fakeOutlet();
  const conn = protocol.open(outlet);
  conn.message(JSON.stringify({ type: "hello", token: "ana" }));
  conn.message(JSON.stringify({ type: "ping", ref: "first" }));
  await until(() => outlet.sent.some((f) => f.type === "pong"));
  for (let i = 0; i < 20; i++) conn.message(JSON.stringify({ type: "ping", ref: `p${i}` }));
  const closed = await outlet.closedWith;
  assert.equal(closed.code, 4008);
  assert.equal(closed.reason, "Rate limit exceeded: too many frames");
  // Nothing past the refusal was handled, not even the frames queued before it.
  assert.deepEqual(outlet.sent.filter((f) => f.type === "pong").map((f) => f.ref), ["first"]);
  assert.deepEqual(detached, ["c1"]);
  assert.equal(protocol.size(), 0);
});
