/** End-to-end: WebSocket heartbeats, dead connections and idle timeouts, with presence following. */

import assert from "node:assert/strict";
import { eventually, startServer, type TestServer } from "../_support/server.ts";

function presenceOf(server: TestServer, user: string): unknown {
  const snapshot = server.relais.registry.peek("user", user)?.getSnapshot();
  return (snapshot?.value as string | undefined) ?? "offline";
}

Deno.test("a silent WebSocket client gets a ping after one heartbeat and is dropped after two, going offline", async () => {
  const server = await startServer({ RELAIS_HEARTBEAT_MS: "200", RELAIS_IDLE_TIMEOUT_MS: "0" });
  try {
    // Timed from before the connection opens: the server's heartbeat starts before the
    // client has its welcome, so timing from the welcome could see a ping early.
    const opened = Date.now();
    const { client, welcome } = await server.login("camille");
    assert.equal(welcome.heartbeat_ms, 200);
    await eventually(() => presenceOf(server, "camille") === "online", 2000, "online");
    await client.next((f) => f.type === "ping", 2000);
    const pingAt = Date.now() - opened;
    assert.ok(pingAt >= 180, `ping after ${pingAt} ms`);
    const closed = await client.closed;
    const deadAt = Date.now() - opened;
    assert.ok(deadAt >= 380 && deadAt < 3000, `dropped after ${deadAt} ms`);
    assert.equal(closed.code, 1001);
    await eventually(() => presenceOf(server, "camille") === "offline", 2000, "offline");
  } finally {
    await server.close();
  }
});

Deno.test("a WebSocket client that answers pings stays connected", async () => {
  const server = await startServer({ RELAIS_HEARTBEAT_MS: "150", RELAIS_IDLE_TIMEOUT_MS: "0" });
  try {
    const { client } = await server.login("yanis");
    const until = Date.now() + 1200;
    let pings = 0;
    while (Date.now() < until) {
      try {
        await client.next((f) => f.type === "ping", 400);
        pings++;
        client.send({ type: "pong" });
      } catch {
        // No ping in this window: fine as long as the socket stays open.
      }
    }
    assert.ok(pings >= 2, `${pings} pings`);
    assert.equal(client.socket.readyState, WebSocket.OPEN);
    assert.equal(presenceOf(server, "yanis"), "online");
  } finally {
    await server.close();
  }
});

Deno.test("an idle WebSocket is closed with 4009 while an active one stays open", async () => {
  const server = await startServer({ RELAIS_HEARTBEAT_MS: "100", RELAIS_IDLE_TIMEOUT_MS: "600" });
  try {
    // Taken before the idle client's login: its idle time counts from its last frame (the
    // login's), so a clock started after both logins reads the close early.
    const idleSince = Date.now();
    const idle = await server.login("camille");
    const active = await server.login("yanis");
    const started = Date.now();
    // The idle client still answers heartbeats: liveness is not activity.
    const answering = (async () => {
      while (idle.client.socket.readyState === WebSocket.OPEN) {
        try {
          await idle.client.next((f) => f.type === "ping", 300);
          idle.client.send({ type: "pong" });
        } catch {
          // Closed or quiet.
        }
      }
    })();
    const working = (async () => {
      while (Date.now() - started < 1500) {
        active.client.send({ type: "presence.set", status: "online" });
        await new Promise((r) => setTimeout(r, 100)); // measures time: active every 100 ms
      }
    })();
    const closed = await idle.client.closed;
    const after = Date.now() - idleSince;
    assert.equal(closed.code, 4009);
    assert.ok(after >= 550 && after < 5000, `closed after ${after} ms`);
    await working;
    await answering;
    assert.equal(active.client.socket.readyState, WebSocket.OPEN);
    await eventually(() => presenceOf(server, "camille") === "offline", 2000, "offline");
    assert.equal(presenceOf(server, "yanis"), "online");
  } finally {
    await server.close();
  }
});
