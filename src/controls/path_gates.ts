/**
 * The controls of the HTTP paths, mounted before the routes: failed authentications
 * counted per client address, the allowed origins and connection attempts of the SSE and
 * poll transports, and the kill switches and rate limits of the users' paths. The
 * routes authenticate on their own; these gates judge the principal the route will serve.
 */

import { Hono } from "hono";
import type { AppEnv } from "../auth/principal.ts";
import { errorResponse } from "../errors.ts";
import type { Guard } from "./guard.ts";
import type { OriginPolicy } from "./origins.ts";

/** A conversation's message list, whose POST counts against the `messages` limit. */
const MESSAGES_PATH = /^\/v1\/conversations\/[^/]+\/messages$/;

/** The gates as middleware of a sub-app; mount it before the routes it guards. */
export function pathGates(guard: Guard, origins: OriginPolicy): Hono<AppEnv> {
  return new Hono<AppEnv>()
    .use("/v1/*", async (c, next) => {
      await next();
      // Failed authentications per client address: past the limit, the failing attempts
      // (never a valid credential) are refused instead of answered.
      if (c.res.status !== 401) return;
      const refused = await guard.authFailed(c.get("clientIp"));
      if (refused) c.res = errorResponse(c, refused);
    })
    .use(guard.rememberUsers())
    .use("/v1/sse", async (c, next) => {
      origins.assert(c);
      await guard.connectAttempt(c.get("clientIp"));
      await next();
    })
    .use("/v1/poll", (c, next) => {
      origins.assert(c);
      return next();
    })
    .use("/v1/me/notifications", guard.userGate("notifications"))
    .use("/v1/me/notifications/*", guard.userGate("notifications"))
    .use("/v1/me/conversations", guard.userGate("messaging"))
    .use(
      "/v1/conversations",
      guard.userGate("messaging", (c) => c.req.method === "POST" ? "conversations" : undefined),
    )
    .use(
      "/v1/conversations/*",
      guard.userGate(
        "messaging",
        (c) => c.req.method === "POST" && MESSAGES_PATH.test(c.req.path) ? "messages" : undefined,
      ),
    );
}
