/**
 * Long-polling and the HTTP actions a client needs when it is not on a WebSocket:
 * `GET /v1/poll` and `POST /v1/me/presence` (ack and read are under `/v1/me/notifications`).
 */

import { Hono } from "hono";
import * as v from "valibot";
import { requireUser, type RequireUserDeps } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import type { Tickets } from "../src/auth/tickets.ts";
import { AppError } from "../src/errors.ts";
import type { PollSessions } from "../src/realtime/poll_sessions.ts";
import type { Sessions } from "../src/realtime/session.ts";
import { EpochSchema } from "../src/schemas/frames.ts";
import { describe } from "../src/openapi.ts";
import { validate } from "../src/validate.ts";
import { jsonBody } from "./_json_body.ts";
import { StreamPositionSchema } from "./sse.ts";

/** Query of `GET /v1/poll`. */
export const PollQuerySchema = v.object({
  after: v.optional(StreamPositionSchema),
  /** The epoch of `after`: a previous answer's (or `welcome`'s) `epoch`. */
  epoch: v.optional(EpochSchema),
  /** Milliseconds to wait when nothing is there; capped by `RELAIS_POLL_MAX_TIMEOUT_MS`. */
  timeout: v.optional(
    v.pipe(v.string(), v.regex(/^\d{1,9}$/, "expected a whole number"), v.transform(Number)),
  ),
  session: v.optional(v.pipe(v.string(), v.uuid("expected the session of a previous answer"))),
  ticket: v.optional(v.string()),
});

/** Body of `POST /v1/me/presence`. */
export const PresenceBodySchema = v.strictObject({
  status: v.picklist(["online", "away"], 'expected "online" or "away"'),
  /** The connection (its `welcome.session`); all of the user's connections when absent. */
  session: v.optional(v.pipe(v.string(), v.maxLength(100))),
});

/** Dependencies of {@linkcode createPollRoutes}. */
export interface PollRoutesDeps extends RequireUserDeps {
  tickets: Tickets;
  polls: PollSessions;
  sessions: Sessions;
  pollMaxTimeoutMs: number;
}

/** `GET /v1/poll` and `POST /v1/me/presence`. */
export function createPollRoutes(deps: PollRoutesDeps) {
  const defaultTimeout = Math.min(25_000, deps.pollMaxTimeoutMs);
  return new Hono<AppEnv>()
    .get(
      "/v1/poll",
      describe({
        summary: "Long-poll: the next batch of server frames, or an empty one after `timeout` ms",
        description:
          "Answers `{session, epoch, seq, frames}`. Send `seq` back as `after`, `epoch` as `epoch` and `session` to keep presence and buffering between polls; an `after` behind the last answer replays from the store and the recent window; an `epoch` that is not the current one replays every stored item with `welcome.recovered: false`. `timeout` (ms) is capped by RELAIS_POLL_MAX_TIMEOUT_MS (default 25 000 or the cap).",
        tags: ["realtime"],
        security: "user",
        responses: { 200: { description: "A batch of frames" }, 400: { description: "Bad query" } },
      }),
      requireUser(deps, { allowTicket: true }),
      validate("query", PollQuerySchema),
      async (c) => {
        const query = c.req.valid("query");
        const body = await deps.polls.poll(c.get("user"), {
          session: query.session,
          after: query.after,
          epoch: query.epoch,
          timeoutMs: Math.min(query.timeout ?? defaultTimeout, deps.pollMaxTimeoutMs),
        });
        // The answer names its session first: another than the one asked for started anew.
        if (query.session !== undefined) {
          c.set("pollRestarted", !body.startsWith(`{"session":${JSON.stringify(query.session)},`));
        }
        return c.body(body, 200, {
          "content-type": "application/json; charset=utf-8",
          "cache-control": "no-store",
        });
      },
    )
    .post(
      "/v1/me/presence",
      describe({
        summary: "Set presence (online / away) of one connection or all; online counts as activity",
        description:
          "For clients on SSE or polling, which cannot send `presence.set` frames: `session` is the connection's `welcome.session`.",
        tags: ["realtime"],
        security: "user",
        responses: { 200: { description: "Set" }, 404: { description: "Unknown session" } },
      }),
      requireUser(deps),
      jsonBody(PresenceBodySchema, { maxBytes: 4096, what: "body" }),
      (c) => {
        const body = c.req.valid("json");
        if (!deps.sessions.presence(c.get("user").id, body.session, body.status)) {
          throw new AppError("not_found", `Unknown session "${body.session}"`);
        }
        return c.json({
          status: body.status,
          ...(body.session ? { session: body.session } : {}),
        });
      },
    );
}
