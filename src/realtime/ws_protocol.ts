/**
 * The `relais.v1` WebSocket protocol, independent of the runtime's socket type.
 *
 * A connection starts unauthenticated: its first useful frame is `hello`. Anything wrong
 * in a frame gets an `error` frame and the socket stays usable; bad credentials close it
 * with 4001, an oversized frame with 4008.
 *
 * Liveness: a client silent for one heartbeat interval gets a `ping` (it answers `pong`),
 * and one silent for two intervals is dead and dropped, so presence follows. A client with
 * no activity (anything but `ping`, `pong` and `presence.set` away) for the idle timeout is
 * closed with 4009; the SDK reconnects when its user is active again.
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
}

/** Frames of one connection waiting to be handled; more is a flood and closes it (4008). */
const MAX_FRAMES_IN_FLIGHT = 256;

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

/** Creates the protocol; `open` is called once per accepted socket. */
export function createWsProtocol(deps: WsProtocolDeps) {
  const { sessions, messaging } = deps;

  return {
    /**
     * Starts a connection. `preauth` is a user already authenticated at the upgrade
     * (an `Authorization` header); the client still sends `hello`.
     */
    open(outlet: Outlet, preauth?: UserPrincipal, peer: PeerInfo = {}): WsConnection {
      let user: UserPrincipal | undefined;
      let connId: string | undefined;
      let closed = false;
      let expiry: ReturnType<typeof setTimeout> | undefined;
      // Liveness timers check timestamps when they fire instead of being re-armed per frame.
      let heartbeat: ReturnType<typeof setTimeout> | undefined;
      let idle: ReturnType<typeof setTimeout> | undefined;
      let lastReceived = Date.now();
      let lastActive = Date.now();
      let pinged = false;
      // Frames are handled one at a time, in arrival order.
      let queue = Promise.resolve();
      let inFlight = 0;
      const { guard } = deps;

      const helloTimer = setTimeout(
        () => close(CLOSE.unauthenticated, "No hello received"),
        deps.helloTimeoutMs,
      );

      function close(code: number, reason: string) {
        if (closed) return;
        closed = true;
        stopTimers();
        if (connId) sessions.detach(connId);
        try {
          outlet.close(code, reason);
        } catch {
          // Already closed by the peer.
        }
      }

      function send(text: string) {
        if (closed) return;
        try {
          outlet.send(text);
        } catch {
          close(1011, "Send failed");
        }
      }

      function stopTimers() {
        clearTimeout(helloTimer);
        clearTimeout(expiry);
        clearTimeout(heartbeat);
        clearTimeout(idle);
      }

      function beat() {
        const interval = deps.heartbeatMs!;
        const silent = Date.now() - lastReceived;
        if (silent >= 2 * interval) return close(1001, "Heartbeat timeout");
        if (silent >= interval && !pinged) {
          pinged = true;
          send(encodeFrame({ type: "ping" }));
        }
        heartbeat = setTimeout(beat, (silent >= interval ? 2 * interval : interval) - silent);
      }

      function checkIdle() {
        const quiet = Date.now() - lastActive;
        if (quiet >= deps.idleTimeoutMs!) return close(CLOSE.idle, "Idle timeout");
        idle = setTimeout(checkIdle, deps.idleTimeoutMs! - quiet);
      }

      function startLiveness() {
        if (deps.heartbeatMs) heartbeat = setTimeout(beat, deps.heartbeatMs);
        if (deps.idleTimeoutMs) idle = setTimeout(checkIdle, deps.idleTimeoutMs);
      }

      function error(code: string, message: string, ref?: string, retryAfterMs?: number) {
        send(encodeFrame({
          type: "error",
          code,
          message,
          ...(ref ? { ref } : {}),
          ...(retryAfterMs !== undefined ? { retry_after_ms: retryAfterMs } : {}),
        }));
      }

      function watchExpiry(principal: UserPrincipal) {
        clearTimeout(expiry);
        if (principal.expiresAt === undefined) return;
        // setTimeout holds 32-bit delays; a later expiry is re-armed when it comes closer.
        const delay = Math.min(principal.expiresAt - Date.now(), 2 ** 31 - 1);
        expiry = setTimeout(() => {
          if (principal.expiresAt! <= Date.now()) close(CLOSE.unauthenticated, "Token expired");
          else watchExpiry(principal);
        }, Math.max(0, delay));
      }

      async function authenticate(frame: Extract<ClientFrame, { type: "hello" }>) {
        if (frame.token) return await deps.auth.verifyToken(frame.token);
        if (frame.ticket) {
          const principal = await deps.tickets.redeem(frame.ticket);
          if (!principal) throw new AppError("unauthenticated", "Unknown or used ticket");
          return principal;
        }
        if (preauth) return preauth;
        throw new AppError("unauthenticated", "Missing credentials: send a token or a ticket");
      }

      async function hello(frame: Extract<ClientFrame, { type: "hello" }>) {
        let principal: UserPrincipal;
        try {
          await guard?.beforeAuth(peer.ip);
        } catch (e) {
          close(CLOSE.policy, closeReason(e instanceof AppError ? e.message : "Refused"));
          return;
        }
        try {
          principal = await authenticate(frame);
        } catch (e) {
          const message = e instanceof AppError ? e.message : "Invalid credentials";
          if (!(e instanceof AppError && e.code === "unavailable")) {
            guard?.authFailed(peer.ip).catch((err) =>
              deps.onError("Cannot count an auth failure", err)
            );
          }
          close(CLOSE.unauthenticated, message.slice(0, 120));
          return;
        }
        try {
          // Kill switch on realtime (4003 with the reason) and the per-user connection cap.
          await guard?.admitConnection(principal, { refresh: user !== undefined });
        } catch (e) {
          const refused = e instanceof AppError ? e : undefined;
          close(
            refused?.code === "feature_disabled" ? CLOSE.forbidden : CLOSE.policy,
            closeReason(refused?.message ?? "Connection refused"),
          );
          if (!refused) deps.onError("Cannot admit a connection", e);
          return;
        }
        if (user) {
          // A second hello refreshes the credentials of the same user.
          if (principal.id !== user.id) {
            error("forbidden", "A hello cannot change the user of a connection", frame.ref);
            return;
          }
          user = principal;
          watchExpiry(principal);
          return;
        }
        clearTimeout(helloTimer);
        user = principal;
        watchExpiry(principal);
        deps.messaging?.seen(principal);
        const attached = await sessions.attach(principal.id, outlet, frame.after);
        if (closed) sessions.detach(attached.connId);
        else {
          connId = attached.connId;
          startLiveness();
          // Tells the UI which features are switched off for this user, if any.
          const control = guard?.controlFrameFor(connId, await guard.subject(principal));
          if (control) send(control);
        }
      }

      async function handle(frame: ClientFrame) {
        if (frame.type === "hello") return await hello(frame);
        if (frame.type === "ping") return send(encodeFrame({ type: "pong", ref: frame.ref }));
        if (frame.type === "pong") return;
        if (!user || !connId) {
          return error("hello_required", "Send a hello frame first", frame.ref);
        }
        // Kill switches and rate limits (messaging, messages per user) before any effect.
        await guard?.checkFrame(user, frame);
        switch (frame.type) {
          case "ack":
            if (!(await sessions.ack(user.id, frame.id))) {
              error("not_found", `Unknown item "${frame.id}"`, frame.ref);
            }
            return;
          case "read":
            if ("conversation" in frame) {
              return later(messaging?.read(user.id, frame.conversation, frame.seq), frame.ref);
            }
            if (!(await sessions.read(user.id, frame.id))) {
              error("not_found", `Unknown inbox item "${frame.id}"`, frame.ref);
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
            return later(
              sent?.then((r) => r.created ? undefined : send(messaging!.frameOf(r.message))),
              frame.ref,
            );
          }
          case "typing":
            return later(messaging?.typing(user.id, frame.conversation), frame.ref);
        }
      }

      /** Sends the error of an action answered later, if it fails. */
      function later(action: Promise<unknown> | undefined, ref: string | undefined) {
        if (!action) return error("unsupported", "Conversations are not available", ref);
        action.catch((e) => {
          if (e instanceof AppError) return error(e.code, e.message, ref, e.retryAfterMs);
          deps.onError("WebSocket frame failed", e);
          error("internal", "Internal error", ref);
        });
      }

      function message(data: unknown) {
        if (closed) return;
        lastReceived = Date.now();
        pinged = false;
        if (typeof data !== "string") {
          return error("invalid_frame", "Expected a text frame with JSON");
        }
        if (byteLength(data, deps.maxFrameBytes) > deps.maxFrameBytes) {
          return close(CLOSE.policy, `Frame larger than ${deps.maxFrameBytes} bytes`);
        }
        const maxDepth = deps.maxJsonDepth ?? 32;
        if (jsonDepth(data, maxDepth) > maxDepth) {
          return error("invalid_json", `Frame nests deeper than ${maxDepth} levels`);
        }
        if (inFlight >= MAX_FRAMES_IN_FLIGHT) {
          return close(CLOSE.policy, "Too many frames waiting: slow down");
        }
        let raw: unknown;
        try {
          raw = JSON.parse(data);
        } catch {
          return error("invalid_json", "Frame is not valid JSON");
        }
        const parsed = v.safeParse(ClientFrameSchema, raw);
        if (!parsed.success) {
          const [first] = fieldIssues(parsed.issues);
          return error(
            "validation_failed",
            `Invalid frame: "${first.path}": ${first.message}`,
            refOf(raw),
          );
        }
        const frame = parsed.output;
        if (
          frame.type !== "ping" && frame.type !== "pong" &&
          !(frame.type === "presence.set" && frame.status === "away")
        ) lastActive = lastReceived;
        inFlight++;
        queue = queue.then(() => handle(parsed.output)).catch((e) => {
          if (e instanceof AppError) {
            return error(e.code, e.message, parsed.output.ref, e.retryAfterMs);
          }
          deps.onError("WebSocket frame failed", e);
          error("internal", "Internal error", parsed.output.ref);
        }).finally(() => inFlight--);
      }

      return {
        message,
        closed: () => {
          if (closed) return;
          closed = true;
          stopTimers();
          if (connId) sessions.detach(connId);
        },
      };
    },
  };
}

/** The protocol's type. */
export type WsProtocol = ReturnType<typeof createWsProtocol>;
