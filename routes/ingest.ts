/** Ops: the change-data ingest's state (admin scope). */

import { Hono } from "hono";
import { requireScope } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import type { ServiceKeys } from "../src/auth/service_keys.ts";
import type { Ingest } from "../src/ingest/ingest.ts";
import { describe } from "../src/openapi.ts";

/** Dependencies of {@linkcode createIngestRoutes}. */
export interface IngestRoutesDeps {
  keys: ServiceKeys;
  /** Absent when the ingest is off. */
  ingest?: Ingest;
}

/** `GET /v1/admin/ingest`. */
export function createIngestRoutes(deps: IngestRoutesDeps) {
  return new Hono<AppEnv>()
    .get(
      "/v1/admin/ingest",
      describe({
        summary: "The change-data ingest: lag, pending entries, counts and last dead letters",
        description:
          "With the ingest off (RELAIS_INGEST_STREAM unset), `{enabled: false}`. Otherwise the stream, group and consumer, the group's lag and pending entries (null while Redis cannot be reached), the last entry this node handled, counts since the process started, and the newest entries of the dead-letter stream `<stream>:dead` with their reason.",
        tags: ["ops"],
        security: "admin",
        responses: { 200: { description: "Ingest state" } },
      }),
      requireScope(deps.keys, "admin"),
      async (c) => c.json(deps.ingest ? await deps.ingest.state() : { enabled: false }),
    );
}
