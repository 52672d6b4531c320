/**
 * The Deno entry point: reads the configuration, opens KV, builds the app and serves.
 */

import { upgradeWebSocket } from "hono/deno";
import { createAdapters } from "./app/adapters.ts";
import { createApp } from "./app/app.ts";
import { type Config, ConfigError, loadConfig } from "./config.ts";
import { configureLogging, getLog } from "./log.ts";

async function printDemo(config: Config, origin: string, sign: (sub: string) => Promise<string>) {
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

async function main() {
  let config: Config;
  try {
    config = loadConfig(Deno.env.toObject());
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`relais: ${e.message}`);
      Deno.exit(1);
    }
    throw e;
  }
  await configureLogging(config.logLevel);
  const log = getLog("main");

  if (config.kvPath !== ":memory:") {
    const dir = config.kvPath.replace(/[\\/][^\\/]*$/, "");
    if (dir && dir !== config.kvPath) await Deno.mkdir(dir, { recursive: true });
  }
  const kv = await Deno.openKv(config.kvPath);
  const adapters = createAdapters(config, kv);
  const { store } = adapters;
  const relais = createApp({ config, upgradeWebSocket, ...adapters });
  await relais.start();

  const server = Deno.serve({
    hostname: config.host,
    port: config.port,
    onListen: ({ hostname, port }) => {
      const host = hostname.includes(":") ? `[${hostname}]` : hostname;
      const origin = `http://${host}:${port}`;
      log.info("Listening", { origin, env: config.env });
      // The plain line below is what scripts and tests wait for.
      console.log(`relais listening on ${origin}`);
      if (config.env === "development" && config.auth.generated) {
        printDemo(config, origin, (sub) => relais.auth.signDevToken(sub, { ttlSeconds: 86_400 }))
          .catch((e) => log.error("Cannot print the demo", { error: String(e) }));
      }
    },
  }, relais.app.fetch);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log.info("Shutting down");
    const stopped = server.shutdown();
    relais.drain();
    await stopped;
    await relais.close();
    store.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

if (import.meta.main) await main();
