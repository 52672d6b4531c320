/**
 * The Node upgrade wrapper: the runtime helper is given a view of the request's context,
 * never the context itself; once the socket opens, the view lets go of the request and
 * of the Node request and response, and the socket's own handlers run as they would
 * unwrapped. The runtime helper here is Hono's own `defineWebSocketHelper`, reading what
 * `@hono/node-ws` reads and opening the socket the way it does (after the upgrade's
 * response, with what it was given still held).
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

/** Every object reachable from `root` through own property values (functions excluded). */
function reachable(root: unknown): Set<unknown> {
  const seen = new Set<unknown>();
  const walk = (value: unknown) => {
    if (typeof value !== "object" || value === null || seen.has(value)) return;
    seen.add(value);
    for (const key of Reflect.ownKeys(value)) walk((value as Record<PropertyKey, unknown>)[key]);
  };
  walk(root);
  return seen;
}

Deno.test("the upgrade helper holds a view of its request, which lets go of it once the socket opens", async () => {
  let held: Context | undefined;
  let events: WSEvents | undefined;
  let real: Context | undefined;
  let upgradeHeader: string | undefined;
  const opened = Promise.withResolvers<void>();
  // Like `@hono/node-ws`: reads the upgrade header, answers, then opens the socket later,
  // holding what it was given.
  const runtime = defineWebSocketHelper((c, e) => {
    held = c;
    events = e;
    upgradeHeader = c.req.header("upgrade");
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
    real = c;
    await next();
    c.header("x-frame-options", "DENY");
  });
  app.get(
    "/ws",
    upgrade((c) => {
      // The socket's events are made from the request's own context.
      assert.equal(c, real);
      return socket;
    }),
  );
  const incoming = { headers: { upgrade: "websocket" } };
  const res = await app.request("/ws", { headers: { upgrade: "websocket" } }, {
    incoming,
    outgoing: {},
  });
  assert.equal(res.headers.get("x-upgrade"), "yes");
  assert.equal(res.headers.get("x-frame-options"), "DENY");
  // The helper read the header and the bindings through its view, never the context.
  assert.equal(upgradeHeader, "websocket");
  assert.notEqual(held, real);
  assert.equal((held!.env as { incoming?: unknown }).incoming, incoming);
  assert.equal(held!.req.url, "http://localhost/ws");

  await opened.promise;
  // Once open, what the helper holds reaches neither the request nor the Node bindings.
  assert.equal((held!.env as { incoming?: unknown }).incoming, undefined);
  assert.equal((held!.env as { outgoing?: unknown }).outgoing, undefined);
  assert.equal(held!.req.header("upgrade"), undefined);
  const kept = reachable(held);
  assert.ok(!kept.has(real), "the helper's view reaches the request's context");
  assert.ok(!kept.has(real!.req), "the helper's view reaches the request");
  assert.ok(!kept.has(res), "the helper's view reaches the response");
  // The socket's handlers ran on the socket, and its own `onOpen` is back in place.
  assert.equal(socket.opened.length, 1);
  assert.deepEqual(socket.messages, ["hello"]);
  assert.equal(events, socket);
  assert.ok(!Object.hasOwn(socket, "onOpen"));
  assert.equal(socket.onOpen, Socket.prototype.onOpen);
});
