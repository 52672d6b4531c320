/** The types the WebSocket protocol's modules share: its dependencies and the runtime adapter's view. */

import type { Tickets } from "../auth/tickets.ts";
import type { UserAuth } from "../auth/user_auth.ts";
import type { Guard } from "../controls/guard.ts";
import type { Messaging } from "../messaging/messaging.ts";
import type { Sessions } from "./session.ts";

/** Dependencies of `createWsProtocol`. */
export interface WsProtocolDeps {
  sessions: Sessions;
  auth: UserAuth;
  tickets: Tickets;
  maxFrameBytes: number;
  /** A connection that sends no valid `hello` within this time is closed with 4001. */
  helloTimeoutMs: number;
  /** Heartbeat interval; 0 or absent disables heartbeats. */
  heartbeatMs?: number;
  /** Idle time after which a connection is closed with 4009; 0 or absent disables it. */
  idleTimeoutMs?: number;
  onError(message: string, error: unknown): void;
  /** Kill switches, rate limits and caps (absent: none apply). */
  guard?: Guard;
  /** Deepest JSON nesting accepted in a frame (default 32). */
  maxJsonDepth?: number;
  /** Conversations: `msg.send`, `typing` and conversation `read` frames (absent: not served). */
  messaging?: Pick<Messaging, "seen" | "send" | "read" | "typing" | "frameOf">;
  /**
   * Frames a connection may send: a bucket of `burst` refilled at `perSecond`; past it the
   * connection is closed with 4008 (default 2000, then 200 a second).
   */
  frameRate?: { burst: number; perSecond: number };
}

/** What the runtime adapter knows about the other end. */
export interface PeerInfo {
  /** The client's IP address, for per-IP limits. */
  ip?: string;
}

/** What a runtime adapter calls for one socket. */
export interface WsConnection {
  message(data: unknown): void;
  closed(): void;
}
