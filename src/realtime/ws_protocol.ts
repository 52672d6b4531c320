/**
 * The `relais.v1` WebSocket protocol, independent of the runtime's socket type.
 *
 * A connection starts unauthenticated: its first useful frame is `hello`. Anything wrong
 * in a frame gets an `error` frame and the socket stays usable; bad credentials close it
 * with 4001, an oversized frame with 4008.
 */

import * as v from "valibot";
import type { Tickets } from "../auth/tickets.ts";
import type { UserAuth } from "../auth/user_auth.ts";
import type { UserPrincipal } from "../auth/principal.ts";
import { AppError } from "../errors.ts";
import { type ClientFrame, ClientFrameSchema, CLOSE, encodeFrame } from "../schemas/frames.ts";
import { fieldIssues } from "../validate.ts";
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
  onError(message: string, error: unknown): void;
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
  const { sessions } = deps;

  return {
    /**
     * Starts a connection. `preauth` is a user already authenticated at the upgrade
     * (an `Authorization` header); the client still sends `hello`.
     */
    open(outlet: Outlet, preauth?: UserPrincipal): WsConnection {
      let user: UserPrincipal | undefined;
      let connId: string | undefined;
      let closed = false;
      let expiry: ReturnType<typeof setTimeout> | undefined;
      // Frames are handled one at a time, in arrival order.
      let queue = Promise.resolve();

      const helloTimer = setTimeout(
        () => close(CLOSE.unauthenticated, "No hello received"),
        deps.helloTimeoutMs,
      );

      function close(code: number, reason: string) {
        if (closed) return;
        closed = true;
        clearTimeout(helloTimer);
        clearTimeout(expiry);
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

      function error(code: string, message: string, ref?: string) {
        send(encodeFrame({ type: "error", code, message, ...(ref ? { ref } : {}) }));
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
          principal = await authenticate(frame);
        } catch (e) {
          const message = e instanceof AppError ? e.message : "Invalid credentials";
          close(CLOSE.unauthenticated, message.slice(0, 120));
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
        const attached = await sessions.attach(principal.id, outlet, frame.after);
        if (closed) sessions.detach(attached.connId);
        else connId = attached.connId;
      }

      async function handle(frame: ClientFrame) {
        if (frame.type === "hello") return await hello(frame);
        if (frame.type === "ping") return send(encodeFrame({ type: "pong", ref: frame.ref }));
        if (!user || !connId) {
          return error("hello_required", "Send a hello frame first", frame.ref);
        }
        switch (frame.type) {
          case "ack":
            if (!(await sessions.ack(user.id, frame.id))) {
              error("not_found", `Unknown item "${frame.id}"`, frame.ref);
            }
            return;
          case "read":
            if (!(await sessions.read(user.id, frame.id))) {
              error("not_found", `Unknown inbox item "${frame.id}"`, frame.ref);
            }
            return;
          case "presence.set":
            sessions.notify(user.id, { type: "conn.status", connId, status: frame.status });
            return;
          case "msg.send":
          case "typing":
            return error(
              "unsupported",
              `Frame type "${frame.type}" is not available yet`,
              frame.ref,
            );
        }
      }

      function message(data: unknown) {
        if (closed) return;
        if (typeof data !== "string") {
          return error("invalid_frame", "Expected a text frame with JSON");
        }
        if (byteLength(data, deps.maxFrameBytes) > deps.maxFrameBytes) {
          return close(CLOSE.policy, `Frame larger than ${deps.maxFrameBytes} bytes`);
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
        queue = queue.then(() => handle(parsed.output)).catch((e) => {
          if (e instanceof AppError) return error(e.code, e.message, parsed.output.ref);
          deps.onError("WebSocket frame failed", e);
          error("internal", "Internal error", parsed.output.ref);
        });
      }

      return {
        message,
        closed: () => {
          if (closed) return;
          closed = true;
          clearTimeout(helloTimer);
          clearTimeout(expiry);
          if (connId) sessions.detach(connId);
        },
      };
    },
  };
}

/** The protocol's type. */
export type WsProtocol = ReturnType<typeof createWsProtocol>;
