/** Publishing events and reading their delivery status (service keys). */

import { Hono } from "hono";
import type { ServiceKeys } from "../src/auth/service_keys.ts";
import { requireScope } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import { readJson } from "../src/body.ts";
import type { Publisher } from "../src/delivery/publisher.ts";
import { AppError } from "../src/errors.ts";
import type { Metrics } from "../src/metrics.ts";
import { EnvelopeSchema } from "../src/schemas/envelope.ts";
import type { Store } from "../src/store/store.ts";
import { parseOrThrow } from "../src/validate.ts";
import type { Guard } from "../src/controls/guard.ts";
import type { RateLimits } from "../src/ratelimit/rate_limits.ts";

/** Dependencies of {@linkcode createEventRoutes}. */
export interface EventRoutesDeps {
  keys: ServiceKeys;
  publisher: Publisher;
  store: Store;
  metrics: Metrics;
  maxBodyBytes: number;
  /** Kill switches for everyone (`SYSTEM` scope) refuse publishing their item types. */
  guard?: Guard;
  /** Events per service key. */
  limits?: RateLimits;
  /** Deepest JSON nesting accepted in an envelope (default 32). */
  maxJsonDepth?: number;
}

/** `POST /v1/events` and `GET /v1/events/:id`. */
export function createEventRoutes(deps: EventRoutesDeps) {
  return new Hono<AppEnv>()
    // One pattern for both routes: `/v1/events/*` also matches `/v1/events`, and a second
    // `use` would verify the key twice per request.
    .use("/v1/events/*", requireScope(deps.keys, "events:publish"))
    .post("/v1/events", async (c) => {
      await deps.limits?.consume("events", c.var.service.name);
      const envelope = parseOrThrow(
        EnvelopeSchema,
        await readJson(c, deps.maxBodyBytes, deps.maxJsonDepth),
        "envelope",
      );
      deps.guard?.assertPublishable(envelope.metadata.type);
      const { result, replayed } = await deps.publisher.publish(envelope);
      if (!replayed) deps.metrics.eventsAccepted.inc({ type: envelope.metadata.type });
      if (replayed) c.header("Idempotent-Replayed", "true");
      return c.json(result, 202);
    })
    .get("/v1/events/:id", async (c) => {
      const id = c.req.param("id");
      const status = await deps.store.getStatus(id);
      if (!status) throw new AppError("not_found", `Unknown event "${id.slice(0, 100)}"`);
      return c.json(status);
    });
}
