/**
 * A whole relais from its adapters: the services and actors (`services.ts`), the HTTP
 * app over them (`http.ts`), and their life cycle. Entry points open the adapters
 * (`adapters.ts`) and serve; tests build the same app on an in-memory database.
 */

import type { Hono } from "hono";
import type { UpgradeWebSocket } from "hono/ws";
import type { Registry } from "../../actors/registry.ts";
import type { AppEnv } from "../auth/principal.ts";
import type { UserAuth, UserAuthOptions } from "../auth/user_auth.ts";
import type { Config } from "../config.ts";
import type { Controls } from "../controls/controls.ts";
import type { Guard } from "../controls/guard.ts";
import { getLog } from "../log.ts";
import { MAILER_ID } from "../mail/mailer_actor.ts";
import { PUSH_ID } from "../push/push_actor.ts";
import { RETENTION_ID } from "../retention/retention_actor.ts";
import type { Ingest } from "../ingest/ingest.ts";
import type { Publisher } from "../delivery/publisher.ts";
import type { Metrics } from "../metrics.ts";
import type { OpsHistoryOptions } from "../ops/ops_services.ts";
import type { Hub } from "../realtime/hub.ts";
import type { Sessions } from "../realtime/session.ts";
import type { Adapters } from "./adapters.ts";
import { createHttpApp } from "./http.ts";
import { createServices, type Services } from "./services.ts";

/** What {@linkcode createApp} is built from. */
export interface AppDeps extends Adapters {
  config: Config;
  /** The runtime's WebSocket upgrade (`hono/deno` or `@hono/node-ws`). */
  upgradeWebSocket: UpgradeWebSocket;
  metrics?: Metrics;
  userAuth?: UserAuthOptions;
  /** How the ops page's metrics history samples (default: every 5 s, 15 min). */
  opsHistory?: OpsHistoryOptions;
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
  /** Kill switches. */
  controls: Controls;
  /** Kill switches, rate limits and caps, as every transport and route applies them. */
  guard: Guard;
  /** Change-data ingest; absent when off. */
  ingest?: Ingest;
  /** Resumes the work a previous process left (unfinished fan-outs), starts the ingest. */
  start(): Promise<void>;
  /**
   * Ends the long-lived HTTP responses (SSE streams, waiting polls) so a graceful server
   * shutdown can finish; their clients reconnect and resume. Call it once the server has
   * stopped accepting connections.
   */
  drain(): void;
  /** Stops actors and timers and flushes pending writes; the store is the caller's. */
  close(): Promise<void>;
}

/** Builds relais from its adapters. */
export function createApp(deps: AppDeps): Relais {
  const services = createServices(deps);
  const { registry, sseStreams, polls } = services;
  return {
    app: createHttpApp(services, deps.upgradeWebSocket),
    auth: services.auth,
    publisher: services.publisher,
    registry,
    sessions: services.sessions,
    hub: services.hub,
    metrics: services.metrics,
    controls: services.controls,
    guard: services.guard,
    ...(services.ingest ? { ingest: services.ingest } : {}),
    start: () => startServices(services),
    drain() {
      sseStreams.closeAll();
      polls.closeAll();
    },
    async close() {
      // First: no change is taken from the stream that could not be published.
      await services.ingest?.stop();
      services.ops.history.stop();
      sseStreams.closeAll();
      polls.closeAll();
      // Cluster mode: the leases are given up first, so another node takes over at once.
      await services.adapters.cluster?.singletons.close();
      await services.clusterNode?.close();
      registry.stopAll();
      await services.publisher.idle();
      await services.recorder.close();
      deps.mailTransport.close();
      services.controls.stop();
      await deps.bus.close();
      await services.limits.limiter.close();
    },
  };
}

/**
 * Starts what the services left to do: kill switches, unfinished fan-outs, the mailer,
 * the retention sweeper, the ingest.
 */
async function startServices(services: Services): Promise<void> {
  const log = getLog("app");
  // Cluster mode: every stream's epoch comes from the store before anyone connects, and
  // the node reads the bus before it accepts work (what the others announce reaches it).
  await services.adapters.cluster?.epoch.load();
  await services.adapters.bus.ready();
  await services.controls.start();
  const singletons = services.adapters.cluster?.singletons;
  const janitor = services.clusterNode?.janitor;
  if (singletons && janitor) {
    // One node of the cluster runs each: the one holding its lease, until it dies.
    const { registry } = services;
    const actor = (kind: "mailer" | "retention" | "push", id: string) =>
      singletons.run(
        kind,
        id,
        () => registry.get(kind, id).then(() => {}),
        () => registry.stop(kind, id),
      );
    await actor("mailer", MAILER_ID);
    await actor("retention", RETENTION_ID);
    if (services.push) await actor("push", PUSH_ID);
    // The janitor resumes what a dead node (or this one, before a restart) left unfinished.
    await singletons.run("janitor", "fanouts", () => janitor.start(), () => janitor.stop());
  } else {
    const resumed = await services.publisher.resumeUnfinished();
    if (resumed > 0) log.info("Resumed unfinished fan-outs", { count: resumed });
    await services.registry.get("mailer", MAILER_ID);
    await services.registry.get("retention", RETENTION_ID);
    if (services.push) await services.registry.get("push", PUSH_ID);
  }
  if (!services.push && services.config.env === "production") {
    log.warning(
      "Web Push is off: set RELAIS_VAPID_PUBLIC_KEY and RELAIS_VAPID_PRIVATE_KEY to turn it on",
    );
  }
  const conversations = await services.messaging.start();
  if (conversations > 0) log.info("Resumed conversation fan-outs", { count: conversations });
  await services.ops.history.start();
  // Last: changes are published once everything they go through is running.
  services.ingest?.start();
}
