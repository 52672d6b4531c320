/**
 * The WebSocket upgrade on Node, holding no more per socket than the socket needs.
 *
 * `@hono/node-ws` keeps the context it is given alive for as long as the socket lives
 * (the closures of its listeners share the scope that holds it). A request's Hono context
 * holds the whole HTTP exchange of the upgrade: its `Request` and headers, the
 * `HonoRequest` over them, the router's match, the response with every header the
 * middlewares set, and Node's `IncomingMessage` in its bindings. Measured in a heap
 * snapshot of 1,000 idle sockets, that was 7.1 KB per socket, none of it read again once
 * the socket is open.
 *
 * So the helper is not given the request's context but a view of the three things it
 * reads (`@hono/node-ws` 1.3.1: `req.header("upgrade")` first, `env` for the Node request
 * and its connection mark, `req.url` once the socket opens). The view reads headers from
 * the request until the socket opens, then lets go of it and of the Node request. The
 * socket's events are made from the request's own context, as Hono's helpers make them.
 */

import type { Context, Next } from "hono";
import type { UpgradeWebSocket, WSContext, WSEvents } from "hono/ws";

/** What `@hono/node-server` binds to a request's context: the Node request and response. */
interface NodeBindings {
  incoming?: unknown;
  outgoing?: unknown;
}

/** The part of a request's context the upgrade helper reads. */
interface UpgradeView {
  env: unknown;
  req: { url: string; header(name: string): string | undefined };
}

/**
 * A view of `c` for the upgrade helper, and `release`, which lets go of `c`'s request and
 * of the Node request and response in its bindings (the helper read them once, at the
 * upgrade).
 */
function upgradeView(c: Context): { view: UpgradeView; release(): void } {
  let request: Context["req"] | undefined = c.req;
  const view: UpgradeView = {
    env: c.env,
    req: { url: c.req.url, header: (name) => request?.header(name) },
  };
  return {
    view,
    release() {
      request = undefined;
      const env = view.env as NodeBindings | undefined;
      if (env && typeof env === "object") {
        env.incoming = undefined;
        env.outgoing = undefined;
      }
    },
  };
}

/** Wraps Node's upgrade helper so that a socket holds a view of its upgrade, let go once open. */
export function leanUpgrade<T, U>(upgrade: UpgradeWebSocket<T, U>): UpgradeWebSocket<T, U> {
  const lean = (
    createEvents: (c: Context) => WSEvents<T> | Promise<WSEvents<T>>,
    options?: U,
  ) =>
  async (c: Context, next: Next) => {
    const events = await createEvents(c);
    const { view, release } = upgradeView(c);
    const onOpen = events.onOpen;
    // The socket's handlers stay as they are; only the opening one is wrapped, once.
    events.onOpen = function (event: Event, ws: WSContext<T>) {
      release();
      // The socket's own handler (on its prototype, or none) is back in place.
      delete events.onOpen;
      return onOpen?.call(events, event, ws);
    };
    // The helper takes a context; it is given the view of what it reads (see above).
    return await upgrade(() => events, options)(view as unknown as Context, next);
  };
  return lean as UpgradeWebSocket<T, U>;
}
