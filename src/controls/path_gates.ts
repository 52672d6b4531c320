/**
 * The controls of the HTTP paths, mounted before the routes: failed authentications
 * counted per client address, the allowed origins and connection attempts of the SSE and
 * poll transports, and the kill switches and rate limits of the users' paths. The
 * routes authenticate on their own; these gates judge the principal the route will serve.
 */

import { Hono } from "hono";
import type { AppEnv } from "../auth/principal.ts";
import { AppError, errorResponse } from "../errors.ts";
import type { Guard } from "./guard.ts";
import type { OriginPolicy } from "./origins.ts";

/** A conversation's message list, whose POST counts against the `messages` limit. */
const MESSAGES_PATH = /^\/v1\/conversations\/[^/]+\/messages$/;
/** One message, whose PATCH (edit) and DELETE count against the `messages` limit too. */
const MESSAGE_PATH = /^\/v1\/conversations\/[^/]+\/messages\/[^/]+$/;

/**
 * Whether a request writes a message: a send, an edit or a delete each write the message
 * and an item in every member's stream, so each counts against the `messages` limit.
 */
function writesMessage(method: string, path: string): boolean {
  if (method === "POST") return MESSAGES_PATH.test(path);
  return (method === "PATCH" || method === "DELETE") && MESSAGE_PATH.test(path);
}

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
    .use("/v1/poll", async (c, next) => {
      origins.assert(c);
      // A poll without a session starts one: a connection attempt, like an SSE stream.
      const session = c.req.query("session");
      if (session === undefined) await guard.connectAttempt(c.get("clientIp"));
      await next();
      // A session the server no longer has (or replaced) starts a new one as well; only
      // the answer tells, so it is counted then, and refused past the limit.
      if (session === undefined || c.res.status !== 200 || !c.get("pollRestarted")) return;
      try {
        await guard.connectAttempt(c.get("clientIp"));
      } catch (error) {
        if (!(error instanceof AppError)) throw error;
        c.res = errorResponse(c, error);
      }
    })
    .use("/v1/me/notifications", guard.userGate("notifications"))
    .use("/v1/me/notifications/*", guard.userGate("notifications"))
    .use("/v1/me/conversations", guard.userGate("messaging"))
    // New conversations are counted by the messaging service, once it knows one is created.
    .use("/v1/conversations", guard.userGate("messaging"))
    .use(
      "/v1/conversations/*",
      guard.userGate(
        "messaging",
        (c) => writesMessage(c.req.method, c.req.path) ? "messages" : undefined,
      ),
    );
}
