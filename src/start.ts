/**
 * Start-up shared by the entry points: reads the configuration, opens KV, builds the app,
 * serves it, prints the development demo and shuts down on a signal. What differs between
 * runtimes (serving, KV, WebSocket upgrade, environment, signals) comes in a
 * {@linkcode Runtime} from the entry point (`main.ts` for Deno, `node/main.ts` for Node).
 */

import { mkdir } from "node:fs/promises";
import type { Hono } from "hono";
import type { UpgradeWebSocket } from "hono/ws";
import { createAdapters } from "./app/adapters.ts";
import { createApp } from "./app/app.ts";
import type { AppEnv } from "./auth/principal.ts";
import { type Config, ConfigError, loadConfig } from "./config.ts";
import { configureLogging, getLog } from "./log.ts";

/** Where a server listens, as the runtime reports it once it does. */
export interface ListenAddress {
  hostname: string;
  port: number;
}

/** A listening server, as start-up needs it. */
export interface RunningServer {
  /** Stops accepting connections; resolves once the open ones have ended. */
  shutdown(): Promise<void>;
}

/**
 * Connections the kernel may hold for relais before it accepts them (the listen backlog;
 * the kernel caps it at `net.core.somaxconn`, 4096 by default since Linux 5.4). When every
 * client reconnects at once (a deploy, a network blip), handshakes complete faster than
 * the event loop accepts them: with the runtimes' default of 511, the kernel dropped 777
 * of 5,000 reconnecting clients' handshakes in one storm, and each of those clients tried
 * again only after TCP's one-second retransmission timeout.
 */
export const LISTEN_BACKLOG = 4096;

/** What start-up takes from the runtime it runs on. */
export interface Runtime {
  /** The runtime's name, for the logs. */
  name: "deno" | "node";
  /** The process environment. */
  env: Record<string, string | undefined>;
  /** Opens the KV database at `path` (`:memory:` allowed). */
  openKv(path: string): Promise<Deno.Kv>;
  /** The runtime's WebSocket upgrade for Hono. */
  upgradeWebSocket: UpgradeWebSocket;
  /**
   * Serves `app` on `hostname:port` with a listen queue of `backlog` connections; calls
   * `onListen` once it listens.
   */
  serve(
    app: Hono<AppEnv>,
    options: {
      hostname: string;
      port: number;
      backlog: number;
      onListen(address: ListenAddress): void;
    },
  ): RunningServer;
  /** Calls `handler` on SIGINT and SIGTERM. */
  onStopSignal(handler: () => void): void;
  /** Ends the process. */
  exit(code: number): never;
}

/**
 * Prints the development quick start: the service key, demo tokens and a `curl` on
 * `origin` (also used by `deno task cluster`, with its proxy's origin).
 */
export async function printDemo(
  config: Config,
  origin: string,
  sign: (sub: string) => Promise<string>,
) {
  const key = config.auth.serviceKeys[0];
  const tokens = await Promise.all(["camille", "yanis"].map(async (u) => [u, await sign(u)]));
  const event = JSON.stringify({
    metadata: {
      id: crypto.randomUUID(),
      type: "NOTIFICATION",
      emitter: "demo",
      source: "feedback",
      topic: "feedback.requested",
    },
    payload: {
      fr: { title: "Bonjour", body: "Premier essai" },
      en: { title: "Hello", body: "First try" },
    },
    routing: { audience: { type: "USER", targets: ["camille"] }, retry: { ack_required: true } },
  });
  const lines = [
    "",
    `relais (development) on ${origin}`,
    `  service key "${key.name}" (all scopes): ${key.key}`,
    ...tokens.map(([u, t]) => `  token for user "${u}": ${t}`),
    "",
    "Try it:",
    `  # listen as camille (any WebSocket client, subprotocol relais.v1):`,
    `  #   connect ${
      origin.replace("http", "ws")
    }/v1/ws, send {"type":"hello","token":"<camille's token>"}`,
    `  curl -s -X POST ${origin}/v1/events -H 'X-API-Key: ${key.key}' -H 'Content-Type: application/json' -d '${event}'`,
    `  curl -s ${origin}/v1/me/notifications -H 'Authorization: Bearer ${tokens[0][1]}'`,
    `  demo page: ${origin}/ · ops page: ${origin}/ops (service key) · API docs: ${origin}/docs`,
    "",
  ];
  console.log(lines.join("\n"));
}

/**
 * Runs relais on `runtime` until a stop signal: a bad configuration ends the process with
 * one line naming the variable.
 */
export async function start(runtime: Runtime): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(runtime.env);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`relais: ${e.message}`);
      runtime.exit(1);
    }
    throw e;
  }
  await configureLogging(config.logLevel);
  const log = getLog("main");

  // The Deno KV file, unless every store lives in Redis (cluster mode).
  let kv: Deno.Kv | undefined;
  if (config.store === "kv") {
    if (config.kvPath !== ":memory:") {
      const dir = config.kvPath.replace(/[\\/][^\\/]*$/, "");
      if (dir && dir !== config.kvPath) await mkdir(dir, { recursive: true });
    }
    kv = await runtime.openKv(config.kvPath);
  }
  const adapters = createAdapters(config, kv);
  const { store } = adapters;
  const relais = createApp({ config, upgradeWebSocket: runtime.upgradeWebSocket, ...adapters });
  await relais.start();

  const server = runtime.serve(relais.app, {
    hostname: config.host,
    port: config.port,
    backlog: LISTEN_BACKLOG,
    onListen: ({ hostname, port }) => {
      const host = hostname.includes(":") ? `[${hostname}]` : hostname;
      const origin = `http://${host}:${port}`;
      log.info("Listening", { origin, env: config.env, runtime: runtime.name });
      // The plain line below is what scripts and tests wait for.
      console.log(`relais listening on ${origin}`);
      if (config.env === "development" && config.auth.generated) {
        printDemo(config, origin, (sub) => relais.auth.signDevToken(sub, { ttlSeconds: 86_400 }))
          .catch((e) => log.error("Cannot print the demo", { error: String(e) }));
      }
    },
  });

  let stopping = false;
  runtime.onStopSignal(async () => {
    if (stopping) return;
    stopping = true;
    log.info("Shutting down");
    const stopped = server.shutdown();
    relais.drain();
    await stopped;
    await relais.close();
    store.close();
    runtime.exit(0);
  });
}
