/** The WebSocket endpoint and connect tickets. */

import { Hono } from "hono";
import type { UpgradeWebSocket, WSContext, WSEvents } from "hono/ws";
import { requireUser, type RequireUserDeps } from "../src/auth/middleware.ts";
import type { AppEnv, UserPrincipal } from "../src/auth/principal.ts";
import type { Tickets } from "../src/auth/tickets.ts";
import { AppError } from "../src/errors.ts";
import type { WsConnection, WsProtocol } from "../src/realtime/ws_protocol.ts";
import type { Outlet } from "../src/realtime/hub.ts";
import { SUBPROTOCOL } from "../src/schemas/frames.ts";
import type { Guard } from "../src/controls/guard.ts";
import { describe } from "../src/openapi.ts";
import type { OriginPolicy } from "../src/controls/origins.ts";

/** Dependencies of {@linkcode createRealtimeRoutes}. */
export interface RealtimeRoutesDeps extends RequireUserDeps {
  tickets: Tickets;
  protocol: WsProtocol;
  upgradeWebSocket: UpgradeWebSocket;
  /** Connection attempts per IP, kill switches and caps (absent: none apply). */
  guard?: Guard;
  /** Browser origins allowed to open the socket (absent: any). */
  origins?: OriginPolicy;
}

/**
 * One socket: the runtime's event handlers and the protocol's outlet in one object, with
 * methods on the prototype rather than closures per socket.
 */
class WsSocket implements WSEvents, Outlet {
  readonly transport = "ws";
  conn: WsConnection | undefined = undefined;
  ws: WSContext | undefined = undefined;
  protocol: WsProtocol;
  preauth: UserPrincipal | undefined;
  ip: string | undefined;

  constructor(protocol: WsProtocol, preauth: UserPrincipal | undefined, ip: string | undefined) {
    this.protocol = protocol;
    this.preauth = preauth;
    this.ip = ip;
  }

  onOpen(_event: Event, ws: WSContext) {
    this.ws = ws;
    this.conn = this.protocol.open(this, this.preauth, { ip: this.ip });
  }

  onMessage(event: MessageEvent) {
    this.conn?.message(event.data);
  }

  onClose() {
    this.conn?.closed();
  }

  onError() {
    this.conn?.closed();
  }

  send(text: string) {
    this.ws!.send(text);
  }

  close(code: number, reason: string) {
    try {
      this.ws!.close(code, reason);
    } catch {
      // A reason the runtime refuses (over 123 bytes of UTF-8) must not leave the socket
      // open with nothing left to close it: the code alone, then.
      this.ws!.close(code);
    } finally {
      // A peer that stopped reading may never complete the close handshake: forget the
      // connection now rather than when the socket finally dies.
      this.conn?.closed();
    }
  }

  bufferedAmount(): number {
    return (this.ws?.raw as { bufferedAmount?: number } | undefined)?.bufferedAmount ?? 0;
  }
}

const describeWs = describe({
  summary:
    "WebSocket, subprotocol relais.v1 (hello {after, epoch}, ack, read, ping → welcome {epoch, seq, recovered}, event, pong, error)",
  tags: ["realtime"],
  security: "none",
  responses: {
    101: { description: "Switching protocols" },
    400: { description: "Not an upgrade" },
  },
});

/** `GET /v1/ws` and `POST /v1/connect-tickets`. */
export function createRealtimeRoutes(deps: RealtimeRoutesDeps) {
  return new Hono<AppEnv>()
    .post(
      "/v1/connect-tickets",
      describe({
        summary: "A single-use ticket (60 s) to open WS, SSE or poll without a token in a URL",
        tags: ["realtime"],
        security: "user",
        responses: { 201: { description: "The ticket and its expiry" } },
      }),
      requireUser(deps),
      async (c) => c.json(await deps.tickets.issue(c.get("user")), 201),
    )
    .get("/v1/ws", describeWs, async (c, next) => {
      if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
        throw new AppError("invalid_request", "Expected a WebSocket upgrade request");
      }
      const offered = (c.req.header("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim())
        .filter(Boolean);
      if (offered.length > 0 && !offered.includes(SUBPROTOCOL)) {
        throw new AppError("invalid_request", `Unsupported subprotocol: expected "${SUBPROTOCOL}"`);
      }
      deps.origins?.assert(c);
      const ip = c.get("clientIp");
      await deps.guard?.connectAttempt(ip);
      // Clients that can set headers may authenticate at the upgrade; they still say hello.
      let preauth: UserPrincipal | undefined;
      if (c.req.header("authorization") || c.req.header("x-signed-context")) {
        await requireUser(deps)(c, () => Promise.resolve());
        preauth = c.get("user");
      }
      const upgrade = deps.upgradeWebSocket(
        () => new WsSocket(deps.protocol, preauth, ip),
        // Deno's own idle timeout re-arms a timer per frame and per socket; the protocol's
        // heartbeat (one sweep for every socket) already pings and drops dead peers.
        { ...(offered.length > 0 ? { protocol: SUBPROTOCOL } : {}), idleTimeout: 0 },
      );
      return await upgrade(c, next);
    });
}
