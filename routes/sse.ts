/** `GET /v1/sse`: the user's stream as Server-Sent Events. */

import { Hono } from "hono";
import * as v from "valibot";
import { requireUser, type RequireUserDeps } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import type { Tickets } from "../src/auth/tickets.ts";
import type { StreamPosition } from "../src/realtime/session.ts";
import type { SseStreams } from "../src/realtime/sse_streams.ts";
import { EpochSchema } from "../src/schemas/frames.ts";
import { describe } from "../src/openapi.ts";
import { validate } from "../src/validate.ts";

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

/**
 * Headers of `GET /v1/sse`: `Last-Event-ID`, which a reconnecting `EventSource` sends (blank
 * counts as absent).
 */
export const SseHeadersSchema = v.object({
  "last-event-id": v.optional(
    v.pipe(
      v.string(),
      v.trim(),
      v.transform((id) => id === "" ? undefined : id),
      v.optional(LastEventIdSchema),
    ),
  ),
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
    .get(
      "/v1/sse",
      describe({
        summary: "The user's stream as Server-Sent Events (the WebSocket's server frames)",
        description:
          "Each frame is one event whose data is the frame's JSON; stream items carry their position as `id: <epoch>:<seq>` (the epoch is `welcome.epoch`). Resumes after the `Last-Event-ID` header (`<epoch>:<seq>`, or a bare `<seq>` from older ids), else after `after` of epoch `epoch`; a resume from another epoch (or a bare `<seq>`) replays every stored item and gets `recovered: false`. Credentials: Authorization, the gateway's signed context, or a single-use `ticket` (an EventSource cannot set headers). A stream the server ends gets a last `close` frame with the WebSocket close code (4001, 4003, 4008, 4009).",
        tags: ["realtime"],
        security: "user",
        responses: {
          200: { description: "text/event-stream" },
          400: { description: "Bad after, epoch or Last-Event-ID" },
        },
      }),
      requireUser(deps, { allowTicket: true }),
      validate("query", SseQuerySchema),
      validate("header", SseHeadersSchema, { fields: { "last-event-id": "Last-Event-ID" } }),
      async (c) => {
        const query = c.req.valid("query");
        // The header is a whole position: its epoch (or none) goes with its seq.
        const position: StreamPosition = c.req.valid("header")["last-event-id"] ??
          { after: query.after, epoch: query.epoch };
        const body = await deps.streams.open(c.get("user"), position);
        return c.body(body, 200, {
          "content-type": "text/event-stream; charset=utf-8",
          "cache-control": "no-cache, no-store, no-transform",
          // Buffering proxies (nginx) would hold frames back.
          "x-accel-buffering": "no",
        });
      },
    );
}
