/**
 * The Node.js entry point: relais on `@hono/node-server`, `@hono/node-ws` and `@deno/kv`
 * (the start-up itself is `../start.ts`, shared with the Deno entry point). It runs as a
 * bundle built by `build.ts` (`deno task start:node`).
 */

import process from "node:process";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { createAdaptorServer } from "@hono/node-server";
import { createNodeWebSocket } from "@hono/node-ws";
import type { Hono } from "hono";
import type { AppEnv } from "../auth/principal.ts";
import { start } from "../start.ts";
import { SUBPROTOCOL } from "../schemas/frames.ts";
import { openNodeKv } from "./kv.ts";
import { leanUpgrade } from "./lean_upgrade.ts";
import { settleAbandonedUpgrades, type UpgradeServer } from "./settle_upgrade.ts";

/** How long a shutdown waits for open connections before cutting them. */
const SHUTDOWN_GRACE_MS = 5_000;

// `@hono/node-ws` answers upgrades through the app, which is built after the upgrade
// helper it hands out: it reaches the app once it is served.
let served: Hono<AppEnv> | undefined;
const nodeWs = createNodeWebSocket({
  app: {
    request: (...args: Parameters<Hono["request"]>) => {
      if (!served) throw new Error("The app is not served yet");
      return served.request(...args);
    },
  } as unknown as Hono,
});
// Like `Deno.upgradeWebSocket({ protocol })`: the socket speaks `relais.v1` whenever the
// client offers it, whatever else it offers first (the route refuses an offer without it).
nodeWs.wss.options.handleProtocols = (offered: Set<string>) =>
  offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false;
// An upgrade `ws` refuses or finds closed must not keep its request alive for good.
settleAbandonedUpgrades(nodeWs.wss as unknown as UpgradeServer);

await start({
  name: "node",
  env: process.env,
  openKv: openNodeKv,
  upgradeWebSocket: leanUpgrade(nodeWs.upgradeWebSocket),
  serve(app, { hostname, port, backlog, onListen }) {
    served = app;
    // As `serve` of `@hono/node-server` does, with the listen backlog it does not pass.
    const server = createAdaptorServer({ fetch: app.fetch });
    server.listen({ host: hostname, port, backlog }, () => {
      const info = server.address() as AddressInfo;
      onListen({ hostname: info.address, port: info.port });
    });
    // Node's server stops watching a socket for errors once it hands it over as an upgrade,
    // and `@hono/node-ws` answers it only after the app has seen the request: a client
    // resetting the connection in between would be an unhandled `error` ending the process.
    server.on("upgrade", (_request, socket: Duplex) => {
      socket.on("error", () => socket.destroy());
    });
    nodeWs.injectWebSocket(server);
    return {
      shutdown: () =>
        new Promise<void>((resolve) => {
          // Like `Deno.serve`'s shutdown: no new connection, the open ones are ended.
          server.close(() => resolve());
          for (const ws of nodeWs.wss.clients) ws.close(1001, "Server shutting down");
          // A peer that never answers the close handshake does not hold the exit.
          setTimeout(() => {
            for (const ws of nodeWs.wss.clients) ws.terminate();
            if ("closeAllConnections" in server) server.closeAllConnections();
          }, SHUTDOWN_GRACE_MS).unref();
        }),
    };
  },
  onStopSignal(handler) {
    process.on("SIGINT", handler);
    process.on("SIGTERM", handler);
  },
  exit: (code) => process.exit(code),
});
