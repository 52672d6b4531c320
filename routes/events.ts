/** Publishing events and reading their delivery status (service keys). */

import { Hono } from "hono";
import * as v from "valibot";
import type { ServiceKeys } from "../src/auth/service_keys.ts";
import { requireScope } from "../src/auth/middleware.ts";
import type { AppEnv, ServicePrincipal } from "../src/auth/principal.ts";
import type { Publisher } from "../src/delivery/publisher.ts";
import { AppError } from "../src/errors.ts";
import type { Metrics } from "../src/metrics.ts";
import { EnvelopeSchema, EventIdParamSchema } from "../src/schemas/envelope.ts";
import type { EventRecord, EventStore } from "../src/store/store.ts";
import { describe } from "../src/openapi.ts";
import { validate } from "../src/validate.ts";
import { jsonBody } from "./_json_body.ts";
import type { Guard } from "../src/controls/guard.ts";
import type { RateLimits } from "../src/ratelimit/rate_limits.ts";
import type { SpanContext, Tracing } from "../src/tracing.ts";

/** Dependencies of {@linkcode createEventRoutes}. */
export interface EventRoutesDeps {
  keys: ServiceKeys;
  publisher: Publisher;
  store: EventStore;
  metrics: Metrics;
  maxBodyBytes: number;
  /** Kill switches for everyone (`SYSTEM` scope) refuse publishing their item types. */
  guard?: Guard;
  /** Events per service key. */
  limits?: RateLimits;
  /** Deepest JSON nesting accepted in an envelope (default 32). */
  maxJsonDepth?: number;
  /** The root span of each published event's trace; none when traces are off. */
  tracing?: Tracing;
}

/**
 * Whether `service` may read the status of `event`: the key that published it, or an
 * `admin` key (ops). An event recorded without its publisher (before publishers were
 * kept, or published by relais itself) stays readable by any key that may publish.
 */
function mayRead(event: EventRecord, service: ServicePrincipal): boolean {
  return event.publishedBy === undefined || event.publishedBy === service.name ||
    service.scopes.includes("admin");
}

/** `POST /v1/events` and `GET /v1/events/:id`. */
export function createEventRoutes(deps: EventRoutesDeps) {
  return new Hono<AppEnv>()
    // One middleware per route, so each request verifies the key once.
    .post(
      "/v1/events",
      describe({
        summary: "Publish an envelope to its audience",
        description:
          "Answers 202 once the event and its per-user stream entries are durable. Re-posting the same metadata.id with the same service key returns the first result (Idempotent-Replayed: true); with another key it is refused with 409, since the id is taken.",
        tags: ["events"],
        security: "service",
        responses: {
          202: { description: "Accepted: durable and fanned out" },
          409: { description: "conflict: metadata.id is taken by another service key" },
          413: { description: "Body too large" },
          415: { description: "Not JSON" },
        },
      }),
      requireScope(deps.keys, "events:publish"),
      // The rate limit counts before the body is read.
      async (c, next) => {
        await deps.limits?.consume("events", c.get("service").name);
        await next();
      },
      jsonBody(EnvelopeSchema, {
        maxBytes: deps.maxBodyBytes,
        maxDepth: deps.maxJsonDepth,
        what: "envelope",
      }),
      async (c) => {
        const envelope = c.req.valid("json");
        deps.guard?.assertPublishable(envelope.metadata.type);
        const publishedBy = c.get("service").name;
        const publish = (trace?: SpanContext) =>
          deps.publisher.publish(envelope, { publishedBy, ...(trace ? { trace } : {}) });
        // Traced: the root of the event's trace, its id on the request's log line.
        const { result, replayed } = deps.tracing
          ? await deps.tracing.run("POST /v1/events", {
            "relais.event.id": envelope.metadata.id,
            "relais.event.type": envelope.metadata.type,
          }, (trace) => {
            c.set("traceId", trace.traceId);
            return publish(trace);
          })
          : await publish();
        if (!replayed) deps.metrics.eventsAccepted.inc({ type: envelope.metadata.type });
        if (replayed) c.header("Idempotent-Replayed", "true");
        return c.json(result, 202);
      },
    )
    .get(
      "/v1/events/:id",
      describe({
        summary: "Delivery status of an event",
        description:
          "Readable by the service key that published the event (scope events:publish) and by admin keys. Ephemeral events (REALTIME and SYSTEM without ack) wait on nobody: their deliveries are counted (delivered, at most targeted) and pending_users is empty.",
        tags: ["events"],
        security: "service",
        responses: {
          200: { description: "Targeted, delivered, acked and failed counts, pending users" },
          404: { description: "Unknown event, or one another service key published" },
        },
      }),
      requireScope(deps.keys, ["events:publish", "admin"]),
      validate("param", v.object({ id: EventIdParamSchema }), { what: "event id" }),
      async (c) => {
        const { id } = c.req.valid("param");
        // Another service's event answers as an unknown one: its id is not confirmed.
        const event = await deps.store.getEvent(id);
        const status = event && mayRead(event, c.get("service"))
          ? await deps.store.getStatus(id)
          : undefined;
        if (!status) throw new AppError("not_found", `Unknown event "${id.slice(0, 100)}"`);
        return c.json(status);
      },
    );
}
