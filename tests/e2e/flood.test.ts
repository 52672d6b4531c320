/**
 * A client that floods the WebSocket is closed with 4008 and a reason it can read, even
 * while its frames are still arriving: the close frame reaches it, so it does not see an
 * abnormal closure (1006) and knows not to reconnect at once. Everyone else goes on.
 */

import assert from "node:assert/strict";
import { envelope, startServer } from "../_support/server.ts";
import type { TestClient } from "../_support/ws_client.ts";

const FLOOD = 20_000;

/** The close code and reason, or a failure when the socket is still open after `ms`. */
async function closedWithin(client: TestClient, ms = 10_000) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    const error = new Error(`Socket still open after ${ms} ms`);
    timer = setTimeout(() => reject(error), ms); // deadline, not synchronisation
  });
  try {
    return await Promise.race([client.closed, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Sends `frame` as fast as the socket takes it, `count` times or until it closes. */
function flood(client: TestClient, frame: string, count = FLOOD): number {
  let sent = 0;
  while (sent < count && client.socket.readyState === WebSocket.OPEN) {
    client.sendRaw(frame);
    sent++;
  }
  return sent;
}

for (
  const [what, frame] of [
    ["pings", JSON.stringify({ type: "ping" })],
    ["acks", JSON.stringify({ type: "ack", id: "0193a1e2-7c00-7000-8000-000000000001" })],
    ["invalid frames", "{not json"],
  ] as const
) {
  Deno.test(`a client flooding ${what} is closed with 4008 and a reason`, async () => {
    const server = await startServer();
    try {
      const { client: bystander } = await server.login("camille");
      const { client } = await server.login("flooder");
      flood(client, frame);
      const closed = await closedWithin(client);
      assert.equal(closed.code, 4008, JSON.stringify(closed));
      assert.match(closed.reason, /too many frames/i);
      // The server goes on for everyone else.
      await server.publish(envelope(["camille"]));
      assert.equal((await bystander.next((f) => f.type === "event")).type, "event");
    } finally {
      await server.close();
    }
  });
}

Deno.test("an oversized frame followed by more frames closes the socket with 4008 and a reason", async () => {
  const server = await startServer({ RELAIS_MAX_FRAME_BYTES: "1024" });
  try {
    const { client } = await server.login("camille");
    client.send({ type: "ping", ref: "x".repeat(2000) });
    flood(client, JSON.stringify({ type: "ping" }), 2_000);
    const closed = await closedWithin(client);
    assert.equal(closed.code, 4008, JSON.stringify(closed));
    assert.match(closed.reason, /larger than 1024 bytes/);
  } finally {
    await server.close();
  }
});

Deno.test("a binary frame over the frame cap closes the socket with 4008, a small one gets an error frame", async () => {
  const server = await startServer({ RELAIS_MAX_FRAME_BYTES: "1024" });
  try {
    const { client } = await server.login("camille");
    client.sendRaw(new Uint8Array(16).buffer);
    const error = await client.next((f) => f.type === "error");
    assert.equal(error.code, "invalid_frame");
    client.sendRaw(new Uint8Array(4096).buffer);
    const closed = await closedWithin(client);
    assert.equal(closed.code, 4008, JSON.stringify(closed));
    assert.match(closed.reason, /larger than 1024 bytes/);
  } finally {
    await server.close();
  }
});
