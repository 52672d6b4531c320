/**
 * relais's Node stack without relais: `@hono/node-server` and `@hono/node-ws` wired as
 * relais's Node entry wires them (its lean upgrade, its subprotocol, its listen backlog),
 * answering `hello` with a fixed `welcome` and nothing else. Its memory per idle socket is
 * the least relais on Node can hold per connected user before any of its own state (the
 * user's actor, session and stream head), the floor of the "≤ Socket.IO's" idle target.
 *
 * Bundled for Node by the bench (`deno bundle --platform node`), then run with `node`
 * (HOST, PORT); prints `hono-node listening on http://HOST:PORT` and exits when its
 * standard input closes.
 */

import process from "node:process";
import type { AddressInfo } from "node:net";
import { createAdaptorServer } from "@hono/node-server";
import { createNodeWebSocket } from "@hono/node-ws";
import { Hono } from "hono";
import { leanUpgrade } from "../../src/node/lean_upgrade.ts";
import { SUBPROTOCOL } from "../../src/schemas/frames.ts";

const WELCOME = JSON.stringify({
  type: "welcome",
  user: "",
  session: "",
  seq: 0,
  recovered: false,
});

const app = new Hono();
const nodeWs = createNodeWebSocket({ app });
nodeWs.wss.options.handleProtocols = (offered: Set<string>) =>
  offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false;
const upgrade = leanUpgrade(nodeWs.upgradeWebSocket);

app.get(
  "/v1/ws",
  upgrade(() => ({
    onMessage(event, ws) {
      const data = event.data;
      if (typeof data === "string" && data.startsWith('{"type":"hello"')) ws.send(WELCOME);
    },
  })),
);
app.get("/healthz", (c) => c.json({ ok: true }));

const server = createAdaptorServer({ fetch: app.fetch });
server.listen({
  host: process.env.HOST ?? "127.0.0.1",
  port: Number(process.env.PORT ?? "0"),
  backlog: 4096,
}, () => {
  const { address, port } = server.address() as AddressInfo;
  console.log(`hono-node listening on http://${address}:${port}`);
});
nodeWs.injectWebSocket(server);

// The harness owns this process: it stops when the harness's pipe closes.
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
