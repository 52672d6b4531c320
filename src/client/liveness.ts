/**
 * Tells a dead connection from a quiet one. The server sends something at least every
 * heartbeat; after one silent heartbeat the client pings (when it can), after two and a
 * grace period it gives the connection up.
 */

import type { RelaisTimers } from "./relais_types.ts";

/** What {@linkcode createLiveness} needs. */
export interface LivenessOptions {
  timers: RelaisTimers;
  /** Asks the server for a sign of life (a WebSocket `ping`; other transports can't). */
  ping(): void;
  /** The server stayed silent too long: the connection is dead. */
  dead(): void;
}

/** The liveness watch of the current connection. */
export interface Liveness {
  /** Something came from the server. */
  heard(): void;
  /** Starts checking, the server having promised to send something every `heartbeatMs`. */
  start(heartbeatMs: number): void;
  /** Stops checking. */
  stop(): void;
}

/** Creates a liveness watch; it checks nothing until `start()`. */
export function createLiveness({ timers, ping, dead }: LivenessOptions): Liveness {
  // Called as plain functions: a runtime's own timers refuse another `this`.
  const { setTimeout: schedule, clearTimeout: cancel } = timers;
  let lastHeard = 0;
  let pinged = false;
  let timer: unknown;
  return {
    heard() {
      lastHeard = Date.now();
      pinged = false;
    },
    start(heartbeatMs) {
      cancel(timer);
      pinged = false;
      const grace = Math.min(heartbeatMs, 5000);
      const every = Math.max(100, heartbeatMs / 2);
      const check = () => {
        const silent = Date.now() - lastHeard;
        if (silent >= 2 * heartbeatMs + grace) return dead();
        if (silent >= heartbeatMs && !pinged) {
          pinged = true;
          ping();
        }
        timer = schedule(check, every);
      };
      timer = schedule(check, every);
    },
    stop() {
      cancel(timer);
    },
  };
}
