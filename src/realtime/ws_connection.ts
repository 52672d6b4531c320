/**
 * One socket of the `relais.v1` WebSocket protocol: its life cycle from `hello` (credentials,
 * admission) to its close, the deadlines the protocol's shared sweep checks on it (hello,
 * token expiry, heartbeat, idle), flood control, and the order its frames are handled in.
 * What a frame of an attached connection does is `ws_frames.ts`.
 */

import type { UserPrincipal } from "../auth/principal.ts";
import { AppError } from "../errors.ts";
import { type ClientFrame, CLOSE, encodeFrame } from "../schemas/frames.ts";
import { jsonDepth } from "../validate.ts";
import { closeReason } from "../controls/guard.ts";
import type { Outlet } from "./hub.ts";
import { decodeClientFrame, handleSessionFrame } from "./ws_frames.ts";
import type { WsConnection, WsProtocolDeps } from "./ws_types.ts";
import { utf8Length } from "../utf8.ts";

/** Frames of one connection waiting to be handled; more is a flood and closes it (4008). */
const MAX_FRAMES_IN_FLIGHT = 256;

/** Default {@linkcode WsProtocolDeps.frameRate}: generous for acks after a long resume. */
const FRAME_RATE = { burst: 2000, perSecond: 200 };

/**
 * A connection refused for what it sent is closed once it has sent nothing for this
 * long: closing while its frames still arrive makes the runtime drop the socket before the
 * close frame goes out, and the client would only see an abnormal closure (1006, or 0 from
 * Deno's client). A client's stream of frames can pause for tens of milliseconds on a busy
 * machine: with three busy processes beside the flood test on two cores, 50 ms closed 9 of
 * 12 floods mid-stream, 250 ms none.
 */
const DRAIN_QUIET_MS = 250;
/** ...or after this long at most, for a client that never pauses. */
const DRAIN_MAX_MS = 3000;

function byteLength(text: string, max: number): number {
  // Three bytes per UTF-16 unit is the worst case: only measure when it could matter.
  return text.length * 3 <= max ? text.length : utf8Length(text);
}

/** The size of a binary frame as the runtime hands it over (0 if it is none of these). */
function binarySize(data: unknown): number {
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  if (data instanceof Blob) return data.size;
  return 0;
}

/** What every connection of one protocol shares. */
export interface ProtocolShared {
  deps: WsProtocolDeps;
  ping: string;
  /** Connections the sweep checks: every open one. */
  conns: Set<ProtocolConnection>;
  /** Removes a connection from the sweep (stopping it with the last one). */
  forget(conn: ProtocolConnection): void;
}

/**
 * One socket's protocol state. A class rather than closures, and deadlines checked by one
 * sweep per process rather than timers per socket: an idle connection costs a few fields.
 */
export class ProtocolConnection implements WsConnection {
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
  shared: ProtocolShared;
  outlet: Outlet;
  preauth: UserPrincipal | undefined;
  ip: string | undefined;

  constructor(
    shared: ProtocolShared,
    outlet: Outlet,
    preauth: UserPrincipal | undefined,
    ip?: string,
  ) {
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
      // A reason may quote what the client sent: cut to the 123 bytes a close frame holds.
      this.outlet.close(code, closeReason(reason));
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
    this.draining = { since: Date.now(), reason };
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

  /**
   * Closes the connection for an admission refusal: 4003 for a switch, 1013 (after an
   * `error` frame) for a store out of reach, else 4008.
   */
  refuse(error: unknown) {
    const refused = error instanceof AppError ? error : undefined;
    if (refused?.code === "store_unavailable") {
      // The server's failure, not the client's: say so, then 1013 (try again later).
      this.error(refused.code, refused.message, undefined, refused.retryAfterMs);
      return this.close(CLOSE.tryAgainLater, refused.message);
    }
    this.close(
      refused?.code === "feature_disabled" ? CLOSE.forbidden : CLOSE.policy,
      refused?.message ?? "Connection refused",
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
      if (e instanceof AppError && e.code === "store_unavailable") return this.refuse(e);
      const message = e instanceof AppError ? e.message : "Invalid credentials";
      // Past the address's failed-authentication limit, failing hellos (and only those)
      // are refused as a policy violation; a valid credential always gets in.
      const refused = e instanceof AppError && e.code === "unavailable"
        ? undefined
        : await guard?.authFailed(this.ip).catch((err) => {
          deps.onError("Cannot count an auth failure", err);
          return undefined;
        });
      if (refused) this.close(CLOSE.policy, refused.message);
      else this.close(CLOSE.unauthenticated, message);
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
    if (frame.type === "hello") return await this.hello(frame);
    if (frame.type === "ping") return this.send(encodeFrame({ type: "pong", ref: frame.ref }));
    if (frame.type === "pong") return;
    const { user, connId } = this;
    if (!user || !connId) {
      return this.error("hello_required", "Send a hello frame first", frame.ref);
    }
    // Kill switches and rate limits (messaging, messages per user) before any effect.
    await deps.guard?.checkFrame(user, frame);
    await handleSessionFrame({
      deps,
      user,
      connId,
      send: (text) => this.send(text),
      error: (code, message, ref, retryAfterMs) => this.error(code, message, ref, retryAfterMs),
    }, frame);
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
      // The cap holds for every frame: a binary one is refused, and past the cap ends it.
      if (binarySize(data) > deps.maxFrameBytes) {
        return this.refuseFrames(`Frame larger than ${deps.maxFrameBytes} bytes`);
      }
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
    const decoded = decodeClientFrame(data);
    if (!decoded.ok) return this.error(decoded.code, decoded.message, decoded.ref);
    const { frame } = decoded;
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
