/**
 * On Node, a client that stops reading is cut off with 4008 once its outgoing buffer
 * passes the cap, as on Deno: the Node socket reports the bytes it holds back
 * (`bufferedAmount` of the `ws` socket) to the same backpressure rule.
 *
 * The slow client is a raw TCP socket that does the WebSocket handshake and the hello by
 * hand, reads its welcome, and then stops reading.
 */

import assert from "node:assert/strict";
import { spawnServer } from "../_support/process.ts";
import { envelope } from "../_support/server.ts";
import { clientTextFrame, frameReader } from "../_support/raw_ws.ts";
import { login, publish, token, WITHOUT_NODE } from "./_support.ts";

const BUFFER_CAP = 1024 * 1024;
const PAYLOAD_CHARS = 60_000;
// Far more than the cap plus what loopback kernel buffers can hold.
const EVENTS = 400;

const encoder = new TextEncoder();

Deno.test({
  name: "on Node a client that stops reading is cut off with 4008 while another keeps up",
  ignore: WITHOUT_NODE,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const server = await spawnServer({
      RELAIS_MAX_SOCKET_BUFFER_BYTES: String(BUFFER_CAP),
      RELAIS_PUSH_BUDGET: "100000",
      RELAIS_RATE_EVENTS: "off",
    }, { runtime: "node" });
    const port = Number(new URL(server.origin).port);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
      await conn.write(encoder.encode(
        `GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
          `Sec-WebSocket-Protocol: relais.v1\r\n\r\n`,
      ));
      const buf = new Uint8Array(1 << 20);
      // The 101 answer, possibly followed by frames.
      let head = "";
      let rest = new Uint8Array(0);
      while (!head.includes("\r\n\r\n")) {
        const n = await conn.read(buf);
        assert.ok(n !== null, "the server closed during the handshake");
        const text = new TextDecoder("latin1").decode(buf.subarray(0, n));
        head += text;
        const end = head.indexOf("\r\n\r\n");
        if (end >= 0) rest = encoder.encode(head.slice(end + 4));
      }
      assert.match(head, /^HTTP\/1\.1 101/);
      await conn.write(
        clientTextFrame(JSON.stringify({ type: "hello", token: await token("slow") })),
      );
      const frames = frameReader();
      let welcomed = frames.push(rest).some((f) => f.text?.includes('"welcome"'));
      while (!welcomed) {
        const n = await conn.read(buf);
        assert.ok(n !== null, "the server closed before the welcome");
        welcomed = frames.push(buf.subarray(0, n)).some((f) => f.text?.includes('"welcome"'));
      }

      // From here on the slow client reads nothing while a fast one gets every event.
      const fast = await login(server, "fast");
      assert.ok(fast.welcome);
      const filler = "x".repeat(PAYLOAD_CHARS);
      let last = "";
      for (let i = 0; i < EVENTS; i++) {
        last = await publish(
          server,
          envelope(["slow", "fast"], {
            metadata: { type: "REALTIME", source: "activity", topic: "activity.updated" },
            payload: { i, filler },
          }),
        );
      }
      await fast.client.next((f) => f.type === "event" && f.envelope.metadata.id === last, 30_000);
      assert.equal(fast.client.socket.readyState, WebSocket.OPEN);
      await fast.client.close();

      // Reading again, the slow client finds what was sent before the cut, then 4008.
      let code: number | undefined;
      let received = 0;
      // A deadline, not a synchronisation: a server that never cuts it off fails the test.
      const deadline = setTimeout(() => conn.close(), 30_000); // deadline, not synchronisation
      while (code === undefined) {
        const n = await conn.read(buf).catch(() => null);
        if (n === null) break;
        for (const frame of frames.push(buf.subarray(0, n))) {
          if (frame.text?.includes('"event"')) received++;
          if (frame.close !== undefined) code = frame.close;
        }
      }
      clearTimeout(deadline);
      assert.equal(code, 4008);
      assert.ok(received < EVENTS, `the slow client got all ${received} events`);
    } finally {
      try {
        conn.close();
      } catch { /* closed already */ }
      await server.kill("SIGTERM");
    }
  },
});
