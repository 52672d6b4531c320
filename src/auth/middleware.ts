/**
 * Hono middlewares that authenticate the caller and put the principal in the context's variables (`c.get`).
 *
 * They only throw {@linkcode AppError}s; the app's `onError` turns them into responses.
 */

import type { Context, MiddlewareHandler } from "hono";
import { createMiddleware } from "hono/factory";
import type { Scope } from "../config.ts";
import { AppError } from "../errors.ts";
import type { AppEnv, UserPrincipal } from "./principal.ts";
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
 * The user a request's credentials name, verified, or `undefined` when it carries no
 * user credential; throws `unauthenticated` when the credential is invalid.
 *
 * Credentials, first present wins: the gateway's signed context (`X-Signed-Context`,
 * which a gateway may send beside a forwarded `Authorization` it already checked), then
 * `Authorization: Bearer <jwt>`, then `?ticket=` when `allowTicket` is set. Every user
 * route and every gate in front of one authenticates through here, so they agree on who
 * the caller is.
 */
export async function authenticateUser(
  c: Context<AppEnv>,
  deps: RequireUserDeps,
  options: RequireUserOptions = {},
): Promise<UserPrincipal | undefined> {
  const context = c.req.header("X-Signed-Context");
  if (context !== undefined) {
    return await deps.auth.verifySignedContext({
      context,
      signature: c.req.header("X-Context-Signature"),
      kid: c.req.header("X-Context-Kid"),
    });
  }
  const token = bearer(c);
  if (token !== undefined) return await deps.auth.verifyToken(token);
  const ticket = options.allowTicket ? c.req.query("ticket") : undefined;
  if (ticket !== undefined && deps.tickets) {
    const user = await deps.tickets.redeem(ticket);
    if (!user) {
      throw new AppError("unauthenticated", "Invalid ticket: unknown, expired or already used");
    }
    return user;
  }
  return undefined;
}

/**
 * Requires an authenticated user (see {@linkcode authenticateUser}) and sets `c.get("user")`.
 * A user a gate in front of the route already verified from the same request is reused.
 */
export function requireUser(
  deps: RequireUserDeps,
  options: RequireUserOptions = {},
): MiddlewareHandler<AppEnv> {
  if (options.allowTicket && !deps.tickets) {
    throw new Error("requireUser: allowTicket needs deps.tickets");
  }
  return createMiddleware<AppEnv>(async (c, next) => {
    const user = c.get("user") ?? await authenticateUser(c, deps, options);
    if (!user) {
      throw new AppError(
        "unauthenticated",
        options.allowTicket
          ? "Missing credentials: send Authorization: Bearer <token>, the gateway's signed context or ?ticket="
          : "Missing credentials: send Authorization: Bearer <token> or the gateway's signed context",
      );
    }
    c.set("user", user);
    await next();
  });
}

/**
 * Requires a service key carrying `scope` (or, given a list, one of them) and sets
 * `c.get("service")`.
 *
 * The key comes from `X-API-Key`, else from `Authorization: Bearer <key>`.
 */
export function requireScope(
  keys: ServiceKeys,
  scope: Scope | readonly Scope[],
): MiddlewareHandler<AppEnv> {
  const accepted: readonly Scope[] = typeof scope === "string" ? [scope] : scope;
  const named = accepted.map((s) => `"${s}"`).join(" or ");
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
    if (!accepted.some((s) => service.scopes.includes(s))) {
      throw new AppError("forbidden", `Service key "${service.name}" lacks scope ${named}`);
    }
    c.set("service", service);
    await next();
  });
}

/** Whether the request carries a user credential (a JWT bearer or the gateway's context). */
function hasUserCredential(c: Context): boolean {
  if (c.req.header("X-Signed-Context") !== undefined) return true;
  const token = /^Bearer[ \t]+(\S+)/i.exec(c.req.header("Authorization") ?? "")?.[1];
  return token !== undefined && token.split(".").length === 3;
}

/**
 * Refuses a service key beside a user credential: which one would the limits and kill
 * switches apply to? Refused rather than guessed.
 */
export function refuseMixedCredentials(): MiddlewareHandler<AppEnv> {
  return createMiddleware<AppEnv>(async (c, next) => {
    if (c.req.header("X-API-Key") !== undefined && hasUserCredential(c)) {
      throw new AppError(
        "invalid_request",
        "Ambiguous credentials: send a service key (X-API-Key) or a user credential (Authorization, X-Signed-Context), not both",
        { details: [{ path: "X-API-Key", message: "not allowed beside a user credential" }] },
      );
    }
    await next();
  });
}
