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
 */

import * as v from "valibot";
import type { Tickets } from "../auth/tickets.ts";
import type { UserAuth } from "../auth/user_auth.ts";
import type { UserPrincipal } from "../auth/principal.ts";
import { AppError } from "../errors.ts";
import { type ClientFrame, ClientFrameSchema, CLOSE, encodeFrame } from "../schemas/frames.ts";
import { fieldIssues, jsonDepth } from "../validate.ts";
import { closeReason, type Guard } from "../controls/guard.ts";
import type { Messaging } from "../messaging/messaging.ts";
import type { Outlet } from "./hub.ts";
import type { Sessions } from "./session.ts";

/** Dependencies of {@linkcode createWsProtocol}. */
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

/** Frames of one connection waiting to be handled; more is a flood and closes it (4008). */
const MAX_FRAMES_IN_FLIGHT = 256;

/** Default {@linkcode WsProtocolDeps.frameRate}: generous for acks after a long resume. */
const FRAME_RATE = { burst: 2000, perSecond: 200 };

/**
 * A connection refused for what it sent is closed once it has sent nothing for this
 * long: closing while its frames still arrive makes the runtime drop the socket before the
 * close frame goes out, and the client would only see an abnormal closure (1006).
 */
const DRAIN_QUIET_MS = 50;
/** ...or after this long at most, for a client that never pauses. */
const DRAIN_MAX_MS = 3000;

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

const encoder = new TextEncoder();

function byteLength(text: string, max: number): number {
  // Three bytes per UTF-16 unit is the worst case: only measure when it could matter.
  return text.length * 3 <= max ? text.length : encoder.encode(text).byteLength;
}

function refOf(raw: unknown): string | undefined {
  if (typeof raw !== "object" || raw === null) return undefined;
  const ref = (raw as Record<string, unknown>).ref;
  return typeof ref === "string" && ref.length <= 100 ? ref : undefined;
}

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

/** What every connection of one protocol shares. */
interface Shared {
  deps: WsProtocolDeps;
  ping: string;
  /** Connections the sweep checks: every open one. */
  conns: Set<Conn>;
  /** Removes a connection from the sweep (stopping it with the last one). */
  forget(conn: Conn): void;
}

/**
 * One socket's protocol state. A class rather than closures, and deadlines checked by one
 * sweep per process rather than timers per socket: an idle connection costs a few fields.
 */
class Conn implements WsConnection {
  user: UserPrincipal | undefined = undefined;
  connId: string | undefined = undefined;
  ended = false;
  /** Heartbeat and idle checks apply (the connection is attached). */
  live = false;
  openedAt: number;
  lastReceived: number;
  lastActive: number;
  pinged = false;
  /** Frames are handled one at a time, in arrival order; undefined when none is waiting. */
  queue: Promise<void> | undefined = undefined;
  inFlight = 0;
  /** Frames the connection may still send now (a token bucket, refilled on each frame). */
  frameTokens: number;
  /** When a refused connection started draining, with the close it gets once quiet. */
  draining: { since: number; reason: string } | undefined = undefined;
  shared: Shared;
  outlet: Outlet;
  preauth: UserPrincipal | undefined;
  ip: string | undefined;

  constructor(shared: Shared, outlet: Outlet, preauth: UserPrincipal | undefined, ip?: string) {
    this.shared = shared;
    this.outlet = outlet;
    this.preauth = preauth;
    this.ip = ip;
    this.openedAt = this.lastReceived = this.lastActive = Date.now();
    this.frameTokens = (shared.deps.frameRate ?? FRAME_RATE).burst;
  }

  /** Closes the connection if one of its deadlines has passed (called by the sweep). */
  check(now: number) {
    const { deps } = this.shared;
    const draining = this.draining;
    if (draining) {
      if (now - this.lastReceived >= DRAIN_QUIET_MS || now - draining.since >= DRAIN_MAX_MS) {
        this.close(CLOSE.policy, draining.reason);
      }
      return;
    }
    const user = this.user;
    if (!user) {
      if (now - this.openedAt >= deps.helloTimeoutMs) {
        this.close(CLOSE.unauthenticated, "No hello received");
      }
      return;
    }
    if (this.expired(now)) return this.close(CLOSE.unauthenticated, "Token expired");
    if (!this.live) return;
    const interval = deps.heartbeatMs;
    if (interval) {
      const silent = now - this.lastReceived;
      if (silent >= 2 * interval) return this.close(1001, "Heartbeat timeout");
      if (silent >= interval && !this.pinged) {
        this.pinged = true;
        this.send(this.shared.ping);
      }
    }
    if (deps.idleTimeoutMs && now - this.lastActive >= deps.idleTimeoutMs) {
      this.close(CLOSE.idle, "Idle timeout");
    }
  }

  expired(now: number): boolean {
    const expiresAt = this.user?.expiresAt;
    return expiresAt !== undefined && expiresAt <= now;
  }

  close(code: number, reason: string) {
    if (this.ended) return;
    this.end();
    try {
      this.outlet.close(code, reason);
    } catch {
      // Already closed by the peer.
    }
  }

  /**
   * Refuses a connection for what it sent (4008): from now on its frames are dropped and
   * it receives nothing, and the sweep closes it once its frames stop arriving, so the
   * close frame with `reason` reaches a client that was still sending.
   */
  refuseFrames(reason: string) {
    if (this.ended || this.draining) return;
    this.draining = { since: Date.now(), reason: closeReason(reason) };
    this.live = false;
    if (this.connId) this.shared.deps.sessions.detach(this.connId);
    this.connId = undefined;
  }

  /** Takes one frame from the bucket; false when the connection sends too fast. */
  takeFrame(now: number): boolean {
    const rate = this.shared.deps.frameRate ?? FRAME_RATE;
    const elapsed = now - this.lastReceived;
    if (elapsed > 0) {
      this.frameTokens = Math.min(rate.burst, this.frameTokens + (elapsed * rate.perSecond) / 1000);
    }
    if (this.frameTokens < 1) return false;
    this.frameTokens--;
    return true;
  }

  /** Forgets the connection everywhere (the socket is closed or closing). */
  end() {
    this.ended = true;
    this.shared.forget(this);
    if (this.connId) this.shared.deps.sessions.detach(this.connId);
  }

  send(text: string) {
    if (this.ended) return;
    try {
      this.outlet.send(text);
    } catch {
      this.close(1011, "Send failed");
    }
  }

  error(code: string, message: string, ref?: string, retryAfterMs?: number) {
    this.send(encodeFrame({
      type: "error",
      code,
      message,
      ...(ref ? { ref } : {}),
      ...(retryAfterMs !== undefined ? { retry_after_ms: retryAfterMs } : {}),
    }));
  }

  async authenticate(frame: Extract<ClientFrame, { type: "hello" }>) {
    const { deps } = this.shared;
    if (frame.token) return await deps.auth.verifyToken(frame.token);
    if (frame.ticket) {
      const principal = await deps.tickets.redeem(frame.ticket);
      if (!principal) throw new AppError("unauthenticated", "Unknown or used ticket");
      return principal;
    }
    if (this.preauth) return this.preauth;
    throw new AppError("unauthenticated", "Missing credentials: send a token or a ticket");
  }

  /** Closes the connection for an admission refusal: 4003 for a switch, else 4008. */
  refuse(error: unknown) {
    const refused = error instanceof AppError ? error : undefined;
    this.close(
      refused?.code === "feature_disabled" ? CLOSE.forbidden : CLOSE.policy,
      closeReason(refused?.message ?? "Connection refused"),
    );
    if (!refused) this.shared.deps.onError("Cannot admit a connection", error);
  }

  async hello(frame: Extract<ClientFrame, { type: "hello" }>) {
    const { deps } = this.shared;
    const { guard } = deps;
    let principal: UserPrincipal;
    try {
      principal = await this.authenticate(frame);
    } catch (e) {
      const message = e instanceof AppError ? e.message : "Invalid credentials";
      // Past the address's failed-authentication limit, failing hellos (and only those)
      // are refused as a policy violation; a valid credential always gets in.
      const refused = e instanceof AppError && e.code === "unavailable"
        ? undefined
        : await guard?.authFailed(this.ip).catch((err) => {
          deps.onError("Cannot count an auth failure", err);
          return undefined;
        });
      if (refused) this.close(CLOSE.policy, closeReason(refused.message));
      else this.close(CLOSE.unauthenticated, message.slice(0, 120));
      return;
    }
    if (this.user) {
      // A second hello refreshes the credentials of the same user.
      if (principal.id !== this.user.id) {
        this.error("forbidden", "A hello cannot change the user of a connection", frame.ref);
        return;
      }
      try {
        await guard?.admitConnection(principal, { refresh: true });
      } catch (e) {
        return this.refuse(e);
      }
      this.user = principal;
      return;
    }
    // From here the sweep checks the token's expiry instead of the hello deadline.
    this.user = principal;
    deps.messaging?.seen(principal);
    let attached;
    try {
      // Admission (kill switch on realtime, the per-user connection cap) happens here,
      // as for every transport.
      attached = await deps.sessions.attach(principal, this.outlet, {
        after: frame.after,
        epoch: frame.epoch,
      });
    } catch (e) {
      return this.refuse(e);
    }
    if (this.ended) deps.sessions.detach(attached.connId);
    else {
      this.connId = attached.connId;
      this.live = true;
      // Tells the UI which features are switched off for this user, if any.
      const control = guard?.controlFrameFor(attached.connId, await guard.subject(principal));
      if (control) this.send(control);
    }
  }

  async handle(frame: ClientFrame) {
    const { deps } = this.shared;
    const { sessions, messaging } = deps;
    if (frame.type === "hello") return await this.hello(frame);
    if (frame.type === "ping") return this.send(encodeFrame({ type: "pong", ref: frame.ref }));
    if (frame.type === "pong") return;
    const { user, connId } = this;
    if (!user || !connId) {
      return this.error("hello_required", "Send a hello frame first", frame.ref);
    }
    // Kill switches and rate limits (messaging, messages per user) before any effect.
    await deps.guard?.checkFrame(user, frame);
    switch (frame.type) {
      case "ack":
        if (!(await sessions.ack(user.id, frame.id))) {
          this.error("not_found", `Unknown item "${frame.id}"`, frame.ref);
        }
        return;
      case "read":
        if ("conversation" in frame) {
          return this.later(messaging?.read(user.id, frame.conversation, frame.seq), frame.ref);
        }
        if (!(await sessions.read(user.id, frame.id))) {
          this.error("not_found", `Unknown inbox item "${frame.id}"`, frame.ref);
        }
        return;
      case "presence.set":
        sessions.notify(user.id, { type: "conn.status", connId, status: frame.status });
        return;
      case "msg.send": {
        // Answered after the commit without holding the next frames back: the
        // conversation actor keeps this connection's messages in their order.
        const sent = messaging?.send(user.id, frame.conversation, {
          text: frame.text,
          client_id: frame.client_id,
          ...(frame.attachments ? { attachments: frame.attachments } : {}),
        });
        // A new message reaches this connection through the stream; a resend does not.
        return this.later(
          sent?.then((r) => r.created ? undefined : this.send(messaging!.frameOf(r.message))),
          frame.ref,
        );
      }
      case "typing":
        return this.later(messaging?.typing(user.id, frame.conversation), frame.ref);
    }
  }

  /** Sends the error of an action answered later, if it fails. */
  later(action: Promise<unknown> | undefined, ref: string | undefined) {
    if (!action) return this.error("unsupported", "Conversations are not available", ref);
    action.catch((e) => {
      if (e instanceof AppError) return this.error(e.code, e.message, ref, e.retryAfterMs);
      this.shared.deps.onError("WebSocket frame failed", e);
      this.error("internal", "Internal error", ref);
    });
  }

  message(data: unknown) {
    if (this.ended) return;
    const { deps } = this.shared;
    const now = Date.now();
    if (this.draining) {
      this.lastReceived = now;
      return;
    }
    // A frame after the token expired is never acted on, even before the sweep notices.
    if (this.expired(now)) return this.close(CLOSE.unauthenticated, "Token expired");
    const allowed = this.takeFrame(now);
    this.lastReceived = now;
    if (!allowed) return this.refuseFrames("Rate limit exceeded: too many frames");
    this.pinged = false;
    if (typeof data !== "string") {
      return this.error("invalid_frame", "Expected a text frame with JSON");
    }
    if (byteLength(data, deps.maxFrameBytes) > deps.maxFrameBytes) {
      return this.refuseFrames(`Frame larger than ${deps.maxFrameBytes} bytes`);
    }
    const maxDepth = deps.maxJsonDepth ?? 32;
    if (jsonDepth(data, maxDepth) > maxDepth) {
      return this.error("invalid_json", `Frame nests deeper than ${maxDepth} levels`);
    }
    if (this.inFlight >= MAX_FRAMES_IN_FLIGHT) {
      return this.refuseFrames("Rate limit exceeded: too many frames waiting");
    }
    let raw: unknown;
    try {
      raw = JSON.parse(data);
    } catch {
      return this.error("invalid_json", "Frame is not valid JSON");
    }
    const parsed = v.safeParse(ClientFrameSchema, raw);
    if (!parsed.success) {
      const [first] = fieldIssues(parsed.issues);
      return this.error(
        "validation_failed",
        `Invalid frame: "${first.path}": ${first.message}`,
        refOf(raw),
      );
    }
    const frame = parsed.output;
    if (
      frame.type !== "ping" && frame.type !== "pong" &&
      !(frame.type === "presence.set" && frame.status === "away")
    ) this.lastActive = now;
    this.inFlight++;
    this.queue = (this.queue ?? Promise.resolve()).then(() => {
      // Frames queued before a refusal are dropped with the rest.
      if (!this.draining) return this.handle(frame);
    }).catch((e) => {
      if (e instanceof AppError) return this.error(e.code, e.message, frame.ref, e.retryAfterMs);
      deps.onError("WebSocket frame failed", e);
      this.error("internal", "Internal error", frame.ref);
    }).finally(() => {
      // The last frame handled: drop the settled chain rather than keep it per socket.
      if (--this.inFlight === 0) this.queue = undefined;
    });
  }

  closed() {
    if (this.ended) return;
    this.end();
  }
}

/** Creates the protocol; `open` is called once per accepted socket. */
export function createWsProtocol(deps: WsProtocolDeps) {
  const conns = new Set<Conn>();
  const period = sweepIntervalMs(deps);
  // One interval for every socket, running only while there are sockets.
  let sweeper: ReturnType<typeof setInterval> | undefined;
  const shared: Shared = {
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
      const conn = new Conn(shared, outlet, preauth, peer.ip);
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
