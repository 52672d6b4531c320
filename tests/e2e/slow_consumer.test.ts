/**
 * A client that stops reading must not slow anyone else down: it is cut off with 4008
 * once its outgoing buffer passes the cap, while the other clients keep receiving every
 * event with the same latency as before.
 *
 * The slow client is a raw TCP socket that does the WebSocket handshake and the hello by
 * hand and then never reads again, so the server's kernel buffers and then its
 * WebSocket buffer fill up exactly as with a stalled browser.
 */

import assert from "node:assert/strict";
import { envelope, eventually, startServer, type TestServer } from "../_support/server.ts";
import { clientTextFrame, frameReader } from "../_support/raw_ws.ts";
import type { TestClient } from "../_support/ws_client.ts";

const FAST_USERS = ["fast-1", "fast-2", "fast-3", "fast-4"];
const PAYLOAD_CHARS = 60_000;
const BASELINE_EVENTS = 60;
const STALLED_EVENTS = 240;
const BUFFER_CAP = 1024 * 1024;

const encoder = new TextEncoder();

/** Connects, says hello, then never reads: returns a function that drains it afterwards. */
async function stallingClient(server: TestServer, user: string) {
  const port = Number(new URL(server.origin).port);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  await conn.write(encoder.encode(
    `GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: relais.v1\r\n\r\n`,
  ));
  const head = new Uint8Array(1024);
  const n = await conn.read(head);
  assert.match(new TextDecoder().decode(head.subarray(0, n ?? 0)), /^HTTP\/1\.1 101/);
  await conn.write(
    clientTextFrame(JSON.stringify({ type: "hello", token: await server.token(user) })),
  );
  return {
    /** Drops the TCP connection (if the test fails before draining it). */
    close() {
      try {
        conn.close();
      } catch { /* closed already */ }
    },
    /** Reads what the server still sends until its close frame; the close code. */
    async drain(): Promise<number | undefined> {
      const frames = frameReader();
      const buf = new Uint8Array(1 << 20);
      const deadline = Date.now() + 20_000;
      try {
        while (Date.now() < deadline) {
          let timer: ReturnType<typeof setTimeout> | undefined;
          const read = await Promise.race([
            conn.read(buf).catch(() => null),
            new Promise<null>((r) => timer = setTimeout(() => r(null), 5_000)), // deadline, not synchronisation
          ]);
          clearTimeout(timer);
          if (read === null) return undefined;
          const code = frames.push(buf.subarray(0, read)).find((f) => f.close !== undefined);
          if (code) return code.close;
        }
        return undefined;
      } finally {
        conn.close();
      }
    },
  };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Publishes `count` big REALTIME events to `targets`, one every `everyMs`; their ids. */
async function publishBurst(server: TestServer, targets: string[], count: number, everyMs: number) {
  const ids: string[] = [];
  const filler = "x".repeat(PAYLOAD_CHARS);
  for (let i = 0; i < count; i++) {
    const e = envelope(targets, {
      metadata: { type: "REALTIME", source: "activity", topic: "activity.updated" },
      payload: { t: performance.timeOrigin + performance.now(), filler },
    });
    const res = await server.publish(e);
    assert.equal(res.status, 202);
    ids.push((e.metadata as { id: string }).id);
    await new Promise((r) => setTimeout(r, everyMs)); // measures time: a steady rate, for latencies
  }
  return ids;
}

/** Latencies (ms) of the events `ids` as each client received them; fails on any missing. */
async function latencies(clients: TestClient[], ids: string[]): Promise<number[]> {
  const out: number[] = [];
  for (const client of clients) {
    await client.next((f) => f.type === "event" && f.envelope.metadata.id === ids.at(-1), 15_000);
    const byId = new Map<string, number>();
    for (const f of client.received) {
      if (f.type === "event" && !byId.has(f.envelope.metadata.id)) {
        byId.set(f.envelope.metadata.id, f.receivedAt - f.envelope.payload.t);
      }
    }
    for (const id of ids) {
      const latency = byId.get(id);
      assert.ok(latency !== undefined, `event ${id} never reached a fast client`);
      out.push(latency);
    }
  }
  return out;
}

Deno.test({
  name: "a client that stops reading is cut off with 4008 and the others' latency is unaffected",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startServer({
      RELAIS_MAX_SOCKET_BUFFER_BYTES: String(BUFFER_CAP),
      RELAIS_PUSH_BUDGET: "100000",
      RELAIS_RATE_EVENTS: "off",
    });
    let slow: Awaited<ReturnType<typeof stallingClient>> | undefined;
    try {
      const fast: TestClient[] = [];
      for (const user of FAST_USERS) {
        const { client } = await server.login(user);
        // Stamp each frame on arrival: the test reads them later.
        const onmessage = client.socket.onmessage!;
        client.socket.onmessage = (e) => {
          const at = performance.timeOrigin + performance.now();
          onmessage.call(client.socket, e);
          client.received[client.received.length - 1].receivedAt = at;
        };
        fast.push(client);
      }

      const baselineIds = await publishBurst(server, FAST_USERS, BASELINE_EVENTS, 10);
      const baseline = await latencies(fast, baselineIds);

      slow = await stallingClient(server, "slow");
      await eventually(
        () => server.relais.hub.ofUser("slow").length > 0,
        5000,
        "the slow client to attach",
      );
      const stalledIds = await publishBurst(server, ["slow", ...FAST_USERS], STALLED_EVENTS, 10);
      const stalled = await latencies(fast, stalledIds);

      // The slow client was cut off server-side, and told so once it reads again.
      assert.equal(server.relais.hub.ofUser("slow").length, 0, "the slow client is still attached");
      assert.equal(await slow.drain(), 4008);
      // The fast clients are still connected and got everything (checked in latencies).
      for (const client of fast) assert.equal(client.socket.readyState, WebSocket.OPEN);

      const figure = (values: number[]) => ({
        p50: Number(percentile(values, 50).toFixed(1)),
        p95: Number(percentile(values, 95).toFixed(1)),
        max: Number(Math.max(...values).toFixed(1)),
      });
      const before = figure(baseline);
      const during = figure(stalled);
      console.log(
        `slow consumer: ${FAST_USERS.length} fast clients, ${PAYLOAD_CHARS / 1000} KB events; ` +
          `latency ms without a stalled client ${JSON.stringify(before)}, ` +
          `with one stalled until cut off ${JSON.stringify(during)}`,
      );
      // Loose bound: tests of other engineers may run on the same 2 cores meanwhile.
      assert.ok(
        during.p50 <= Math.max(3 * before.p50, before.p50 + 25),
        `median latency went from ${before.p50} to ${during.p50} ms`,
      );
    } finally {
      // A stalled connection left open would hold the server's shutdown forever.
      slow?.close();
      await server.close();
    }
  },
});
