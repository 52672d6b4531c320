/** Publishing events and reading their delivery status (service keys). */

import { Hono } from "hono";
import type { ServiceKeys } from "../src/auth/service_keys.ts";
import { requireScope } from "../src/auth/middleware.ts";
import type { AppEnv, ServicePrincipal } from "../src/auth/principal.ts";
import { readJson } from "../src/body.ts";
import type { Publisher } from "../src/delivery/publisher.ts";
import { AppError } from "../src/errors.ts";
import type { Metrics } from "../src/metrics.ts";
import { EnvelopeSchema, EventIdParamSchema } from "../src/schemas/envelope.ts";
import type { EventRecord, EventStore } from "../src/store/store.ts";
import { parseOrThrow } from "../src/validate.ts";
import type { Guard } from "../src/controls/guard.ts";
import type { RateLimits } from "../src/ratelimit/rate_limits.ts";

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
    .post("/v1/events", requireScope(deps.keys, "events:publish"), async (c) => {
      await deps.limits?.consume("events", c.var.service.name);
      const envelope = parseOrThrow(
        EnvelopeSchema,
        await readJson(c, deps.maxBodyBytes, deps.maxJsonDepth),
        "envelope",
      );
      deps.guard?.assertPublishable(envelope.metadata.type);
      const { result, replayed } = await deps.publisher.publish(envelope, {
        publishedBy: c.var.service.name,
      });
      if (!replayed) deps.metrics.eventsAccepted.inc({ type: envelope.metadata.type });
      if (replayed) c.header("Idempotent-Replayed", "true");
      return c.json(result, 202);
    })
    .get("/v1/events/:id", requireScope(deps.keys, ["events:publish", "admin"]), async (c) => {
      const id = parseOrThrow(EventIdParamSchema, c.req.param("id"), "event id");
      // Another service's event answers as an unknown one: its id is not confirmed.
      const event = await deps.store.getEvent(id);
      const status = event && mayRead(event, c.var.service)
        ? await deps.store.getStatus(id)
        : undefined;
      if (!status) throw new AppError("not_found", `Unknown event "${id.slice(0, 100)}"`);
      return c.json(status);
    });
}
