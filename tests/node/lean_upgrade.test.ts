/**
 * The Node upgrade wrapper: once a socket opens, the upgrade's context lets go of the Node
 * request and the response, and the socket's own handlers run as they would unwrapped.
 * The runtime helper here is Hono's own `defineWebSocketHelper`, opening the socket the
 * way `@hono/node-ws` does (after the upgrade's response, with the context still held).
 */

import assert from "node:assert/strict";
import { type Context, Hono } from "hono";
import { defineWebSocketHelper, type WSContext, type WSEvents } from "hono/ws";
import { leanUpgrade } from "../../src/node/lean_upgrade.ts";

/** A socket whose handlers live on its prototype, as relais's do. */
class Socket implements WSEvents {
  opened: WSContext[] = [];
  messages: unknown[] = [];
  onOpen(_event: Event, ws: WSContext) {
    this.opened.push(ws);
  }
  onMessage(event: MessageEvent) {
    this.messages.push(event.data);
  }
}

Deno.test("an open socket's upgrade context holds neither the Node request nor the response", async () => {
  let held: Context | undefined;
  let events: WSEvents | undefined;
  const opened = Promise.withResolvers<void>();
  // Like `@hono/node-ws`: answers the upgrade, then opens the socket later, holding `c`.
  const runtime = defineWebSocketHelper((c, e) => {
    held = c;
    events = e;
    setTimeout(() => {
      const ws = { raw: undefined, url: new URL(c.req.url) } as unknown as WSContext;
      e.onOpen?.(new Event("open"), ws);
      e.onMessage?.(new MessageEvent("message", { data: "hello" }), ws);
      opened.resolve();
    }, 0);
    return new Response(null, { headers: { "x-upgrade": "yes" } });
  });
  const upgrade = leanUpgrade(runtime);
  const socket = new Socket();
  const app = new Hono();
  app.use(async (c, next) => {
    await next();
    c.header("x-frame-options", "DENY");
  });
  app.get("/ws", upgrade(() => socket));
  const incoming = { headers: { upgrade: "websocket" } };
  const res = await app.request("/ws", {}, { incoming, outgoing: {} });
  assert.equal(res.headers.get("x-upgrade"), "yes");
  assert.equal(res.headers.get("x-frame-options"), "DENY");
  // Until the socket opens, everything is there.
  assert.equal((held!.env as { incoming?: unknown }).incoming, incoming);

  await opened.promise;
  assert.equal((held!.env as { incoming?: unknown }).incoming, undefined);
  assert.equal((held!.env as { outgoing?: unknown }).outgoing, undefined);
  // The response with the middlewares' headers is gone (reading `res` makes an empty one).
  assert.notEqual(held!.res, res);
  assert.equal(held!.res.headers.get("x-frame-options"), null);
  // The socket's handlers ran on the socket, and its own `onOpen` is back in place.
  assert.equal(socket.opened.length, 1);
  assert.deepEqual(socket.messages, ["hello"]);
  assert.equal(events, socket);
  assert.ok(!Object.hasOwn(socket, "onOpen"));
  assert.equal(socket.onOpen, Socket.prototype.onOpen);
});
