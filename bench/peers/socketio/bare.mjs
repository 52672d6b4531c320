/**
 * The ceiling peer on Node: a bare `ws` broadcast server with relais's frames and no logic,
 * what `bench/peers/bare_ws.ts` is on Deno (it sits here for this folder's `node_modules`).
 *
 * `hello` gets a fixed `welcome`; `POST /broadcast` with a client envelope as its body
 * sends one `event` frame, encoded once, to every open socket, as Socket.IO's `io.emit`
 * and the bare Deno peer do. No auth, no storage, no actors (unless asked, below): what is
 * left is the cost of Node's sockets through `ws` (the package `@hono/node-ws` and
 * Socket.IO both send with), which relais on Node cannot beat.
 *
 * With `BARE_ACTORS=1` it is the `bare-node-actor` peer: every socket gets an XState actor
 * of the cheapest machine (`socket_actors.mjs`, as the Deno peer's), started with its
 * `hello`, and every frame goes through it: the floor of the design's rule on Node.
 *
 * Run: `node bench/peers/socketio/bare.mjs` (HOST, PORT, BARE_ACTORS); prints
 * `bare-node listening on http://HOST:PORT` (`bare-node-actor listening…`) and exits when its
 * standard input closes.
 */

import { createServer } from "node:http";
import { WebSocketServer } from "ws";
import { socketActors } from "./socket_actors.mjs";

/** Whether every socket's frames go through an actor of its own. */
const ACTORS = process.env.BARE_ACTORS === "1";
const actors = socketActors((socket, frame) => socket.send(frame));

let seq = 0;
const welcome = () =>
  JSON.stringify({ type: "welcome", user: "", session: "", seq, recovered: false });

const http = createServer((req, res) => {
  if (req.url === "/broadcast" && req.method === "POST") {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      seq++;
      const frame = `{"type":"event","seq":${seq},"envelope":${Buffer.concat(chunks)}}`;
      let sent = 0;
      for (const socket of wss.clients) {
        if (socket.readyState !== socket.OPEN) continue;
        if (ACTORS) actors.push(socket, frame);
        else socket.send(frame);
        sent++;
      }
      res.writeHead(202, { "content-type": "application/json" });
      res.end(JSON.stringify({ sent }));
    });
    return;
  }
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ ok: true, sockets: wss.clients.size, ...actors.counts() }));
    return;
  }
  res.writeHead(404);
  res.end("Not found");
});

// relais's subprotocol, as relais on Node answers it.
const wss = new WebSocketServer({
  server: http,
  path: "/v1/ws",
  handleProtocols: (offered) => offered.has("relais.v1") ? "relais.v1" : false,
});
wss.on("connection", (socket) => {
  socket.on("message", (data, binary) => {
    // Same frames as relais, no logic: a hello is answered, anything else is ignored.
    if (binary || data.toString("utf8", 0, 15) !== '{"type":"hello"') return;
    if (ACTORS) actors.open(socket);
    socket.send(welcome());
  });
  socket.on("close", () => actors.close(socket));
  socket.on("error", () => socket.terminate());
});

// relais's listen backlog (`LISTEN_BACKLOG`): the storms compare the two on equal terms.
http.listen({
  port: Number(process.env.PORT ?? "0"),
  host: process.env.HOST ?? "127.0.0.1",
  backlog: 4096,
}, () => {
  const { address, port } = http.address();
  console.log(`${ACTORS ? "bare-node-actor" : "bare-node"} listening on http://${address}:${port}`);
});

// The harness owns this process: it stops when the harness's pipe closes.
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
