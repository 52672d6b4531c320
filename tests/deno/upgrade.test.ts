/**
 * The Deno upgrade helper, on real sockets on loopback: it does what `hono/deno`'s does
 * (subprotocol, events, a working context) with one listener object per socket.
 */

import assert from "node:assert/strict";
import { Hono } from "hono";
import type { WSContext } from "hono/ws";
import { upgradeWebSocket } from "../../src/deno/upgrade.ts";

/** What the server side of one socket saw, in order. */
interface Seen {
  log: string[];
  ws?: WSContext<WebSocket>;
  closed: PromiseWithResolvers<void>;
}

/** A server on loopback whose `/ws` upgrades with the helper and answers each message. */
function serve(options?: Deno.UpgradeWebSocketOptions) {
  const seen: Seen = { log: [], closed: Promise.withResolvers() };
  const app = new Hono().get(
    "/ws",
    upgradeWebSocket(() => ({
      onOpen(_event, ws) {
        seen.ws = ws;
        seen.log.push(`open ${ws.readyState}`);
      },
      onMessage(event, ws) {
        seen.log.push(`message ${event.data}`);
        ws.send(`echo ${event.data}`);
        if (event.data === "bye") ws.close(4001, "asked");
      },
      onClose(event) {
        seen.log.push(`close ${(event as CloseEvent).code}`);
        seen.closed.resolve();
      },
    }), options),
  );
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  return { seen, server, url: `ws://127.0.0.1:${server.addr.port}/ws` };
}

/** Opens a client, sends `messages`, and collects what it gets until the server closes. */
async function talk(url: string, protocols: string[], messages: string[]) {
  const ws = new WebSocket(url, protocols);
  const got: string[] = [];
  const closed = Promise.withResolvers<number>();
  ws.onmessage = (e) => got.push(String(e.data));
  ws.onclose = (e) => closed.resolve(e.code);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  for (const m of messages) ws.send(m);
  return { protocol: ws.protocol, got, code: await closed.promise };
}

Deno.test("the Deno upgrade negotiates the first offered subprotocol and passes every event with a working context", async () => {
  const { seen, server, url } = serve();
  try {
    const client = await talk(url, ["relais.v1", "other"], ["hi", "bye"]);
    await seen.closed.promise;
    assert.deepEqual(client.protocol, "relais.v1");
    assert.deepEqual(client.got, ["echo hi", "echo bye"]);
    assert.deepEqual(client.code, 4001);
    assert.deepEqual(seen.log, ["open 1", "message hi", "message bye", "close 4001"]);
    // The context reaches the runtime's socket (relais reads its buffered amount).
    assert.ok(seen.ws!.raw instanceof WebSocket);
    assert.deepEqual(seen.ws!.readyState, WebSocket.CLOSED);
  } finally {
    await server.shutdown();
  }
});

Deno.test("the Deno upgrade's options name the subprotocol over what the client offers first", async () => {
  const { seen, server, url } = serve({ protocol: "relais.v1", idleTimeout: 0 });
  try {
    const client = await talk(url, ["other", "relais.v1"], ["bye"]);
    await seen.closed.promise;
    assert.deepEqual(client.protocol, "relais.v1");
    assert.deepEqual(seen.log[0], "open 1");
  } finally {
    await server.shutdown();
  }
});

Deno.test("the Deno upgrade answers a request that is not an upgrade with what comes next", async () => {
  const { server } = serve();
  try {
    const res = await fetch(`http://127.0.0.1:${server.addr.port}/ws`);
    await res.body?.cancel();
    assert.deepEqual(res.status, 404);
  } finally {
    await server.shutdown();
  }
});

Deno.test("a socket holds one listener object and no per-socket closures or URL", async () => {
  const { seen, server, url } = serve();
  try {
    await talk(url, [], ["bye"]);
    await seen.closed.promise;
    const ws = seen.ws!;
    const raw = ws.raw!;
    // `hono/deno` sets the four `on*` handlers (four closures, each wrapped again by Deno)
    // and gives the context two URLs; here the events reach one object's `handleEvent`.
    assert.deepEqual([raw.onopen, raw.onmessage, raw.onclose, raw.onerror], [
      null,
      null,
      null,
      null,
    ]);
    assert.deepEqual(ws.url, null);
  } finally {
    await server.shutdown();
  }
});
