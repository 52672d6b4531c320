/** `GET /v1/sse`: the user's stream as Server-Sent Events. */

import { Hono } from "hono";
import * as v from "valibot";
import { requireUser, type RequireUserDeps } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import type { Tickets } from "../src/auth/tickets.ts";
import type { SseStreams } from "../src/realtime/sse_streams.ts";
import { parseOrThrow } from "../src/validate.ts";

/** A stream position in a query string or header. */
export const StreamPositionSchema = v.pipe(
  v.string(),
  v.regex(/^\d{1,16}$/, "expected a whole number"),
  v.transform(Number),
  v.maxValue(Number.MAX_SAFE_INTEGER),
);

/** Query of `GET /v1/sse` (`ticket` is read by the auth middleware). */
export const SseQuerySchema = v.object({
  after: v.optional(StreamPositionSchema),
  ticket: v.optional(v.string()),
});

/** Dependencies of {@linkcode createSseRoutes}. */
export interface SseRoutesDeps extends RequireUserDeps {
  tickets: Tickets;
  streams: SseStreams;
}

/**
 * `GET /v1/sse`. Credentials: `Authorization`, the gateway's signed context, or a
 * single-use `?ticket=` (an `EventSource` cannot set headers). Resumes after
 * `Last-Event-ID` (what a reconnecting `EventSource` sends) or else `?after=`.
 */
export function createSseRoutes(deps: SseRoutesDeps) {
  return new Hono<AppEnv>()
    .get("/v1/sse", requireUser(deps, { allowTicket: true }), async (c) => {
      const query = parseOrThrow(SseQuerySchema, c.req.query(), "query");
      const lastEventId = c.req.header("last-event-id")?.trim();
      const after = lastEventId
        ? parseOrThrow(v.object({ "Last-Event-ID": StreamPositionSchema }), {
          "Last-Event-ID": lastEventId,
        }, "header")["Last-Event-ID"]
        : query.after;
      const body = await deps.streams.open(c.var.user, after);
      return c.body(body, 200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache, no-store, no-transform",
        // Buffering proxies (nginx) would hold frames back.
        "x-accel-buffering": "no",
      });
    });
}
