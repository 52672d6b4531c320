/** `GET /v1/sse`: the user's stream as Server-Sent Events. */

import { Hono } from "hono";
import * as v from "valibot";
import { requireUser, type RequireUserDeps } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import type { Tickets } from "../src/auth/tickets.ts";
import type { StreamPosition } from "../src/realtime/session.ts";
import type { SseStreams } from "../src/realtime/sse_streams.ts";
import { EpochSchema } from "../src/schemas/frames.ts";
import { parseOrThrow } from "../src/validate.ts";

/** A stream position in a query string or header. */
export const StreamPositionSchema = v.pipe(
  v.string(),
  v.regex(/^\d{1,16}$/, "expected a whole number"),
  v.transform(Number),
  v.maxValue(Number.MAX_SAFE_INTEGER),
);

/**
 * `Last-Event-ID`: `<epoch>:<seq>` as the stream's ids are, or a bare `<seq>` (the ids of
 * servers that predate epochs), read as a {@linkcode StreamPosition}.
 */
export const LastEventIdSchema = v.pipe(
  v.string(),
  v.regex(/^(?:[A-Za-z0-9_-]{1,64}:)?\d{1,16}$/, 'expected "<epoch>:<seq>" or "<seq>"'),
  v.transform((id): StreamPosition => {
    const cut = id.indexOf(":");
    return cut < 0
      ? { after: Number(id) }
      : { epoch: id.slice(0, cut), after: Number(id.slice(cut + 1)) };
  }),
  v.check((p) => Number.isSafeInteger(p.after), "expected a seq no larger than 2^53 - 1"),
);

/** Query of `GET /v1/sse` (`ticket` is read by the auth middleware). */
export const SseQuerySchema = v.object({
  after: v.optional(StreamPositionSchema),
  /** The `welcome.epoch` that `after` belongs to. */
  epoch: v.optional(EpochSchema),
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
 * `Last-Event-ID` (what a reconnecting `EventSource` sends: `<epoch>:<seq>`, or a bare
 * `<seq>`) or else `?after=` and `?epoch=`.
 */
export function createSseRoutes(deps: SseRoutesDeps) {
  return new Hono<AppEnv>()
    .get("/v1/sse", requireUser(deps, { allowTicket: true }), async (c) => {
      const query = parseOrThrow(SseQuerySchema, c.req.query(), "query");
      const lastEventId = c.req.header("last-event-id")?.trim();
      // The header is a whole position: its epoch (or none) goes with its seq.
      const position: StreamPosition = lastEventId
        ? parseOrThrow(v.object({ "Last-Event-ID": LastEventIdSchema }), {
          "Last-Event-ID": lastEventId,
        }, "header")["Last-Event-ID"]
        : { after: query.after, epoch: query.epoch };
      const body = await deps.streams.open(c.var.user, position);
      return c.body(body, 200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache, no-store, no-transform",
        // Buffering proxies (nginx) would hold frames back.
        "x-accel-buffering": "no",
      });
    });
}
