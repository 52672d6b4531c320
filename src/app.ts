/**
 * Wiring: builds the whole server from injected adapters, so tests build a complete
 * app on `Deno.openKv(":memory:")` and entry points only open resources and serve.
 */

import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { UpgradeWebSocket } from "hono/ws";
import { createRegistry, type Registry } from "../actors/registry.ts";
import type { UserEvent } from "../actors/user.machine.ts";
import { createAdminRoutes } from "../routes/admin.ts";
import { createDocsRoutes } from "../routes/docs.ts";
import { createEventRoutes } from "../routes/events.ts";
import { createHealthRoutes } from "../routes/health.ts";
import { createMeRoutes } from "../routes/me.ts";
import { createRealtimeRoutes } from "../routes/realtime.ts";
import { OPERATIONS } from "./api.ts";
import { createUserAudienceResolver } from "./audience/audience.ts";
import type { AppEnv } from "./auth/principal.ts";
import { createServiceKeys } from "./auth/service_keys.ts";
import { createTickets } from "./auth/tickets.ts";
import { createUserAuth, type UserAuth, type UserAuthOptions } from "./auth/user_auth.ts";
import type { Config } from "./config.ts";
import { createPublisher, type Publisher } from "./delivery/publisher.ts";
import { createDeliveryRecorder } from "./delivery/recorder.ts";
import { defineUserActors } from "./delivery/user_actors.ts";
import { AppError, errorBody } from "./errors.ts";
import { getLog, requestLog } from "./log.ts";
import { createMetrics, httpMetrics, type Metrics } from "./metrics.ts";
import { createOpenApiDocument } from "./openapi.ts";
import { createHub, type Hub } from "./realtime/hub.ts";
import { createSessions, type Sessions } from "./realtime/session.ts";
import { createWsProtocol } from "./realtime/ws_protocol.ts";
import { encodeEventFrame } from "./schemas/frames.ts";
import type { Store } from "./store/store.ts";

/** What {@linkcode createApp} is built from. */
export interface AppDeps {
  config: Config;
  store: Store;
  /** The runtime's WebSocket upgrade (`hono/deno` or `@hono/node-ws`). */
  upgradeWebSocket: UpgradeWebSocket;
  metrics?: Metrics;
  userAuth?: UserAuthOptions;
}

/** A built relais: the Hono app plus the services tests and entry points reach into. */
export interface Relais {
  app: Hono<AppEnv>;
  auth: UserAuth;
  publisher: Publisher;
  registry: Registry;
  sessions: Sessions;
  hub: Hub;
  metrics: Metrics;
  /** Resumes the work a previous process left (unfinished fan-outs). */
  start(): Promise<void>;
  /** Stops actors and timers and flushes pending writes; the store is the caller's. */
  close(): Promise<void>;
}

/** Builds relais from its adapters. */
export function createApp(deps: AppDeps): Relais {
  const { config, store } = deps;
  const log = getLog("app");
  const onError = (message: string, error: unknown) => log.error(message, { error: String(error) });

  const metrics = deps.metrics ?? createMetrics();
  const registry = createRegistry();
  metrics.setActorCounter(() => registry.counts());
  const hub = createHub();
  const recorder = createDeliveryRecorder(store, {
    intervalMs: 50,
    onError: (e) => onError("Recording deliveries failed", e),
  });
  const auth = createUserAuth(config.auth, deps.userAuth);
  const tickets = createTickets(store);
  const keys = createServiceKeys(config.auth.serviceKeys);

  defineUserActors({
    registry,
    store,
    hub,
    metrics,
    recorder,
    ackBaseMs: config.delivery.ackRetryBaseMs,
    idleMs: config.delivery.actorIdleMs,
    onError,
  });

  const publisher = createPublisher({
    store,
    audience: createUserAudienceResolver({ maxAudience: config.limits.maxAudience }),
    syncFanoutLimit: 1000,
    onError: (id, e) => onError(`Fan-out of event "${id}" failed`, e),
    deliverLive(batch, json) {
      const acceptedAt = batch.event.acceptedAt;
      for (const { user, item, pending } of batch.items) {
        const actor = registry.peek("user", user);
        if (!actor) continue;
        actor.send(
          {
            type: "item.deliver",
            live: { item, pending, frame: encodeEventFrame(item.seq, json), acceptedAt },
          } satisfies UserEvent,
        );
      }
    },
  });

  const sessions = createSessions({
    store,
    registry,
    hub,
    metrics,
    recorder,
    resumeMaxItems: config.delivery.resumeMaxItems,
    recentWindowMs: config.delivery.recentWindowMs,
  });
  const protocol = createWsProtocol({
    sessions,
    auth,
    tickets,
    maxFrameBytes: config.limits.maxFrameBytes,
    helloTimeoutMs: 10_000,
    onError,
  });

  const document = createOpenApiDocument({ title: "relais", version: "1" }, OPERATIONS);

  const app = new Hono<AppEnv>()
    .use(requestLog())
    .use(httpMetrics(metrics))
    .route("/", createHealthRoutes({ ready: () => store.ping(), metrics }))
    .route("/", createDocsRoutes(document))
    .route(
      "/",
      createEventRoutes({
        keys,
        publisher,
        store,
        metrics,
        maxBodyBytes: config.limits.maxBodyBytes,
      }),
    )
    .route("/", createMeRoutes({ auth, tickets, store, sessions }))
    .route(
      "/",
      createRealtimeRoutes({ auth, tickets, protocol, upgradeWebSocket: deps.upgradeWebSocket }),
    )
    .route("/", createAdminRoutes({ keys, registry, store }));

  app.notFound((c) =>
    c.json(errorBody(new AppError("not_found", `No route for ${c.req.method} ${c.req.path}`)), 404)
  );
  app.onError((error, c) => {
    if (error instanceof AppError) {
      if (error.retryAfterMs !== undefined) {
        c.header("Retry-After", String(Math.ceil(error.retryAfterMs / 1000)));
      }
      return c.json(errorBody(error), error.status);
    }
    if (error instanceof HTTPException) {
      const status = error.status;
      const code = status === 413
        ? "payload_too_large"
        : status === 401
        ? "unauthenticated"
        : "invalid_request";
      return c.json(errorBody(new AppError(code, error.message || "Bad request")), status);
    }
    onError(`Unhandled error on ${c.req.method} ${c.req.path}`, error);
    return c.json(errorBody(new AppError("internal", "Internal error")), 500);
  });

  return {
    app,
    auth,
    publisher,
    registry,
    sessions,
    hub,
    metrics,
    async start() {
      const resumed = await publisher.resumeUnfinished();
      if (resumed > 0) log.info("Resumed unfinished fan-outs", { count: resumed });
    },
    async close() {
      registry.stopAll();
      await publisher.idle();
      await recorder.close();
    },
  };
}
