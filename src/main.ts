/**
 * The Deno entry point: relais on `Deno.serve`, `Deno.openKv` and `Deno.upgradeWebSocket`
 * (through `deno/upgrade.ts`; the start-up itself is `start.ts`, shared with the Node entry
 * point).
 */

import { upgradeWebSocket } from "./deno/upgrade.ts";
import { start } from "./start.ts";

if (import.meta.main) {
  await start({
    name: "deno",
    env: Deno.env.toObject(),
    openKv: (path) => Deno.openKv(path),
    upgradeWebSocket,
    serve(app, { hostname, port, backlog, onListen }) {
      return Deno.serve({ hostname, port, tcpBacklog: backlog, onListen }, app.fetch);
    },
    onStopSignal(handler) {
      Deno.addSignalListener("SIGINT", handler);
      Deno.addSignalListener("SIGTERM", handler);
    },
    exit: (code) => Deno.exit(code),
  });
}
