/**
 * The `relais.v1` WebSocket protocol, independent of the runtime's socket type.
 *
 * A connection starts unauthenticated: its first useful frame is `hello`. Anything wrong
 * in a frame gets an `error` frame and the socket stays usable; bad credentials close it
 * with 4001. An oversized frame or a flood (too many frames a second, or waiting) closes it
 * with 4008 once the client's frames stop arriving, so the close frame reaches it.
 *
 * Liveness: a client silent for one heartbeat interval gets a `ping` (it answers `pong`),
 * and one silent for two intervals is dead and dropped, so presence follows. A client with
 * no activity (anything but `ping`, `pong` and `presence.set` away) for the idle timeout is
 * closed with 4009; the SDK reconnects when its user is active again.
 *
 * These deadlines (hello, heartbeat, idle, token expiry) are checked by one sweep per
 * protocol, walking the open connections at a quarter of the shortest timeout (at most every
 * 250 ms), rather than by timers per socket: idle sockets are what a server holds most of.
 *
 * This module holds the protocol's dependencies and that sweep; one connection's life cycle
 * is `ws_connection.ts`, what the frames of an attached one do is `ws_frames.ts`, and the
 * types they share are `ws_types.ts`.
 */

import type { UserPrincipal } from "../auth/principal.ts";
import { encodeFrame } from "../schemas/frames.ts";
import type { Outlet } from "./hub.ts";
import { ProtocolConnection, type ProtocolShared } from "./ws_connection.ts";
import type { PeerInfo, WsConnection, WsProtocolDeps } from "./ws_types.ts";

export type { PeerInfo, WsConnection, WsProtocolDeps } from "./ws_types.ts";

/** The shared sweep never runs less often than this: a token's expiry is noticed within it. */
const MAX_SWEEP_MS = 250;
/** ...nor more often than this, however short the configured timeouts. */
const MIN_SWEEP_MS = 10;

/**
 * Period of the shared liveness sweep: a quarter of the shortest configured timeout (so
 * each fires at most a quarter late), between {@linkcode MIN_SWEEP_MS} and
 * {@linkcode MAX_SWEEP_MS}.
 */
export function sweepIntervalMs(
  deps: Pick<WsProtocolDeps, "helloTimeoutMs" | "heartbeatMs" | "idleTimeoutMs">,
): number {
  const shortest = Math.min(
    ...[deps.helloTimeoutMs, deps.heartbeatMs ?? 0, deps.idleTimeoutMs ?? 0].filter((ms) => ms > 0),
  );
  return Math.max(MIN_SWEEP_MS, Math.min(MAX_SWEEP_MS, Math.floor(shortest / 4)));
}

/** Creates the protocol; `open` is called once per accepted socket. */
export function createWsProtocol(deps: WsProtocolDeps) {
  const conns = new Set<ProtocolConnection>();
  const period = sweepIntervalMs(deps);
  // One interval for every socket, running only while there are sockets.
  let sweeper: ReturnType<typeof setInterval> | undefined;
  const shared: ProtocolShared = {
    deps,
    ping: encodeFrame({ type: "ping" }),
    conns,
    forget(conn) {
      conns.delete(conn);
      if (conns.size === 0 && sweeper !== undefined) {
        clearInterval(sweeper);
        sweeper = undefined;
      }
    },
  };

  function sweep() {
    const now = Date.now();
    for (const conn of conns) conn.check(now);
  }

  return {
    /**
     * Starts a connection. `preauth` is a user already authenticated at the upgrade
     * (an `Authorization` header); the client still sends `hello`.
     */
    open(outlet: Outlet, preauth?: UserPrincipal, peer: PeerInfo = {}): WsConnection {
      const conn = new ProtocolConnection(shared, outlet, preauth, peer.ip);
      conns.add(conn);
      sweeper ??= setInterval(sweep, period);
      return conn;
    },
    /** Open connections (closed ones are forgotten at once). */
    size: () => conns.size,
    /** Whether the shared sweep's interval runs: only while a connection is open. */
    sweeping: () => sweeper !== undefined,
  };
}

/** The protocol's type. */
export type WsProtocol = ReturnType<typeof createWsProtocol>;
