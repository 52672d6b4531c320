/**
 * What the conversation and message routes share: the middleware that requires a user and
 * remembers them, and the schemas of the names, ids and links in their paths and bodies.
 */

import type { MiddlewareHandler } from "hono";
import { createMiddleware } from "hono/factory";
import * as v from "valibot";
import { requireUser, type RequireUserDeps } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import type { Messaging } from "../src/messaging/messaging.ts";
import { validate } from "../src/validate.ts";

/** A trimmed, non-empty string of at most `max` characters. */
export const name = (max: number) => v.pipe(v.string(), v.trim(), v.minLength(1), v.maxLength(max));

/** A user id in a path or a body. */
export const userId = name(256);

/** An `http` or `https` URL (a message's attachment, a conversation's context). */
export const webUrl = v.pipe(
  v.string(),
  v.maxLength(2000),
  v.url("expected a URL"),
  v.check(
    (s) => URL.canParse(s) && /^https?:$/.test(new URL(s).protocol),
    'expected an "http" or "https" URL',
  ),
);

/** A conversation id in a path. */
export const ConversationIdSchema = name(200);

/** The validator of a path whose only parameter is the conversation's `:id`. */
export function conversationParam() {
  return validate("param", v.object({ id: ConversationIdSchema }), {
    what: "conversation id",
  });
}

/** Requires a user (reusing one another middleware verified) and remembers them. */
export function rememberedUser(
  deps: RequireUserDeps & { messaging: Pick<Messaging, "seen"> },
): MiddlewareHandler<AppEnv> {
  const verifyUser = requireUser(deps);
  return createMiddleware<AppEnv>(async (c, next) => {
    if (!c.get("user")) await verifyUser(c, () => Promise.resolve());
    deps.messaging.seen(c.get("user"));
    await next();
  });
}
