/**
 * WebSocket upgrades on Node that never open are settled as sockets closed before they
 * opened.
 *
 * `@hono/node-ws` (1.3.1) starts a socket's events once `ws` reports the upgraded
 * connection, waiting for it in a map keyed by the Node request. An upgrade that `ws`
 * refuses (a malformed handshake, answered 400) or finds closed already (the client left
 * while the app looked at the request) is never reported: the helper waits for as long as
 * the process lives, holding the Node request, the upgrade's view and the socket's events.
 * Measured on Node 20, 2,000 upgrades with a malformed key kept 18 MB of heap for good.
 */

import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";

/** A `ws` socket made without a connection (`new WebSocket(null, undefined, {})`), as `ws` allows. */
interface DetachedSocket {
  /** Marks it closed (1006, no reason) and emits `close`. */
  emitClose(): void;
}

/** The part of `ws`'s `WebSocketServer` this module uses. */
export interface UpgradeServer {
  handleUpgrade(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    done: (ws: unknown, request: IncomingMessage) => void,
  ): void;
  options: {
    WebSocket: new (address: null, protocols: undefined, options: object) => DetachedSocket;
  };
}

/**
 * Makes `wss` hand an upgrade it does not complete to its caller as a socket that closes
 * (1006) before it ever opens, so whoever waits for that socket lets go of it.
 */
export function settleAbandonedUpgrades(wss: UpgradeServer): void {
  const handleUpgrade = wss.handleUpgrade.bind(wss);
  wss.handleUpgrade = (request, socket, head, done) => {
    let completed = false;
    handleUpgrade(request, socket, head, (ws, req) => {
      completed = true;
      done(ws, req);
    });
    // Without `verifyClient`, `ws` completes or gives up before it returns; a socket it
    // gave up on is ended (a 400) or destroyed (closed already).
    if (completed || !(socket.destroyed || socket.writableEnded)) return;
    const abandoned = new wss.options.WebSocket(null, undefined, {});
    done(abandoned, request);
    // Once the waiting helper has its listeners on it (it resumes a microtask later).
    setImmediate(() => abandoned.emitClose());
  };
}
