/** Liveness, readiness and Prometheus metrics: the endpoints probes and scrapers call. */

import { Hono } from "hono";
import type { AppEnv } from "../src/auth/principal.ts";
import { AppError, errorBody } from "../src/errors.ts";
import { getLog } from "../src/log.ts";
import type { Metrics } from "../src/metrics.ts";
import { describe } from "../src/openapi.ts";

/** What the health routes need. */
export interface HealthDeps {
  /** Resolves to true when the server can serve traffic (KV open, actors started). */
  ready: () => Promise<boolean>;
  metrics: Metrics;
  /** How long `ready()` may take before the server counts as not ready; 2000 ms by default. */
  readyTimeoutMs?: number;
}

const NO_STORE = { "Cache-Control": "no-store" };

/**
 * Creates `GET /healthz` (200 while the process runs), `GET /readyz` (200, or 503
 * `unavailable` when `ready()` is false, throws — the store out of reach, say — or is too
 * slow) and `GET /metrics`.
 */
export function createHealthRoutes(deps: HealthDeps) {
  const log = getLog("health");
  const timeoutMs = deps.readyTimeoutMs ?? 2000;
  return new Hono<AppEnv>()
    .get(
      "/healthz",
      describe({
        summary: "Liveness",
        tags: ["ops"],
        security: "none",
        responses: { 200: { description: "Alive" } },
      }),
      (c) => c.json({ status: "ok" as const }, 200, NO_STORE),
    )
    .get(
      "/readyz",
      describe({
        summary: "Readiness (the store answers)",
        tags: ["ops"],
        security: "none",
        responses: { 200: { description: "Ready" }, 503: { description: "Not ready" } },
      }),
      async (c) => {
        let reason: string;
        try {
          const ready = await withTimeout(deps.ready(), timeoutMs);
          if (ready === true) return c.json({ status: "ready" as const }, 200, NO_STORE);
          reason = ready === undefined ? `no answer within ${timeoutMs} ms` : "not ready yet";
        } catch (error) {
          // The cause stays in the log: it may name internals a public probe should not see.
          log.warning("Readiness check failed", { error, request_id: c.get("requestId") });
          reason = error instanceof AppError && error.code === "store_unavailable"
            ? "the store is unavailable"
            : "readiness check failed";
        }
        const body = errorBody(new AppError("unavailable", `Server is not ready: ${reason}`));
        return c.json(body, 503, NO_STORE);
      },
    )
    .get(
      "/metrics",
      describe({
        summary: "Prometheus metrics",
        tags: ["ops"],
        security: "none",
        responses: { 200: { description: "Prometheus text format" } },
      }),
      async (c) => {
        const text = await deps.metrics.render();
        return c.body(text, 200, { ...NO_STORE, "Content-Type": deps.metrics.contentType });
      },
    );
}

/** Resolves to the promise's value, or to undefined once `ms` have passed. */
async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
