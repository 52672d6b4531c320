/**
 * Hono middlewares that authenticate the caller and put the principal in `c.var`.
 *
 * They only throw {@linkcode AppError}s; the app's `onError` turns them into responses.
 */

import type { Context, MiddlewareHandler } from "hono";
import { createMiddleware } from "hono/factory";
import type { Scope } from "../config.ts";
import { AppError } from "../errors.ts";
import type { AppEnv } from "./principal.ts";
import type { ServiceKeys } from "./service_keys.ts";
import type { Tickets } from "./tickets.ts";
import type { UserAuth } from "./user_auth.ts";

/** What {@linkcode requireUser} verifies credentials with. */
export interface RequireUserDeps {
  auth: UserAuth;
  /** Needed when tickets are allowed. */
  tickets?: Tickets;
}

/** Options of {@linkcode requireUser}. */
export interface RequireUserOptions {
  /** Also accept a single-use `?ticket=` (SSE, poll); off by default. */
  allowTicket?: boolean;
}

/** The bearer credential of an `Authorization` header; `undefined` if none. */
function bearer(c: Context<AppEnv>): string | undefined {
  const header = c.req.header("Authorization");
  if (header === undefined) return undefined;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (!match) {
    throw new AppError(
      "unauthenticated",
      'Invalid Authorization header: expected "Bearer <credential>"',
    );
  }
  return match[1];
}

/**
 * Requires an authenticated user and sets `c.var.user`.
 *
 * Credentials, first present wins: the gateway's signed context (`X-Signed-Context`,
 * which a gateway may send beside a forwarded `Authorization` it already checked), then
 * `Authorization: Bearer <jwt>`, then `?ticket=` when `allowTicket` is set.
 */
export function requireUser(
  deps: RequireUserDeps,
  options: RequireUserOptions = {},
): MiddlewareHandler<AppEnv> {
  if (options.allowTicket && !deps.tickets) {
    throw new Error("requireUser: allowTicket needs deps.tickets");
  }
  return createMiddleware<AppEnv>(async (c, next) => {
    const context = c.req.header("X-Signed-Context");
    if (context !== undefined) {
      c.set(
        "user",
        await deps.auth.verifySignedContext({
          context,
          signature: c.req.header("X-Context-Signature"),
          kid: c.req.header("X-Context-Kid"),
        }),
      );
      return await next();
    }
    const token = bearer(c);
    if (token !== undefined) {
      c.set("user", await deps.auth.verifyToken(token));
      return await next();
    }
    const ticket = options.allowTicket ? c.req.query("ticket") : undefined;
    if (ticket !== undefined && deps.tickets) {
      const user = await deps.tickets.redeem(ticket);
      if (!user) {
        throw new AppError("unauthenticated", "Invalid ticket: unknown, expired or already used");
      }
      c.set("user", user);
      return await next();
    }
    throw new AppError(
      "unauthenticated",
      options.allowTicket
        ? "Missing credentials: send Authorization: Bearer <token>, the gateway's signed context or ?ticket="
        : "Missing credentials: send Authorization: Bearer <token> or the gateway's signed context",
    );
  });
}

/**
 * Requires a service key carrying `scope` and sets `c.var.service`.
 *
 * The key comes from `X-API-Key`, else from `Authorization: Bearer <key>`.
 */
export function requireScope(keys: ServiceKeys, scope: Scope): MiddlewareHandler<AppEnv> {
  return createMiddleware<AppEnv>(async (c, next) => {
    const presented = c.req.header("X-API-Key") ?? bearer(c);
    if (!presented) {
      throw new AppError(
        "unauthenticated",
        "Missing service key: send X-API-Key or Authorization: Bearer <key>",
      );
    }
    const service = await keys.verify(presented);
    if (!service) throw new AppError("unauthenticated", "Unknown service key");
    if (!service.scopes.includes(scope)) {
      throw new AppError("forbidden", `Service key "${service.name}" lacks scope "${scope}"`);
    }
    c.set("service", service);
    await next();
  });
}
