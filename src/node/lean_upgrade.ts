/**
 * The WebSocket upgrade on Node, holding no more per socket than the socket needs.
 *
 * `@hono/node-ws` keeps the request's Hono context alive for as long as the socket lives
 * (the closures of its listeners share the scope that holds it), and with it the whole
 * HTTP exchange of the upgrade: Node's `IncomingMessage`, the `Response` with every
 * header the middlewares set, their strings. Measured with 4,000 idle sockets, that was
 * most of what relais on Node held per user beyond `@hono/node-ws` alone. Once the socket
 * is open nothing reads them again, so this wrapper lets them go then: the context's
 * response and the Node request in its bindings. The request line and headers the route
 * read stay (the context offers no way to drop them).
 */

import type { Context } from "hono";
import type { UpgradeWebSocket, WSContext, WSEvents } from "hono/ws";

/** What `@hono/node-server` binds to a request's context: the Node request and response. */
interface NodeBindings {
  incoming?: unknown;
  outgoing?: unknown;
}

/** Lets go of what the upgrade's context holds and the open socket never reads again. */
export function releaseUpgrade(c: Context): void {
  const env = c.env as NodeBindings | undefined;
  if (env && typeof env === "object") {
    env.incoming = undefined;
    env.outgoing = undefined;
  }
  // The 101 went out with the upgrade: the response object is done with.
  c.res = undefined as unknown as Response;
}

/** Wraps Node's upgrade helper so that each socket releases its upgrade once open. */
export function leanUpgrade<T, U>(upgrade: UpgradeWebSocket<T, U>): UpgradeWebSocket<T, U> {
  const lean = (
    createEvents: (c: Context) => WSEvents<T> | Promise<WSEvents<T>>,
    options?: U,
  ) =>
    upgrade(async (c: Context) => {
      const events = await createEvents(c);
      const onOpen = events.onOpen;
      // The socket's handlers stay as they are; only the opening one is wrapped, once.
      events.onOpen = function (event: Event, ws: WSContext<T>) {
        releaseUpgrade(c);
        // The socket's own handler (on its prototype, or none) is back in place.
        delete events.onOpen;
        return onOpen?.call(events, event, ws);
      };
      return events;
    }, options);
  return lean as UpgradeWebSocket<T, U>;
}
