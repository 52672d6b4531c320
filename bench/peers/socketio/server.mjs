/**
 * The Socket.IO 4 peer, run with `node` as it would be deployed: one `http` server, a
 * Socket.IO `Server` with default settings, and a broadcast with `io.emit`.
 *
 * Clients connect with the websocket transport (socket.io-client, `transports:
 * [WebSocket]`). `POST /broadcast` with a client envelope as its body emits one `event`
 * with the same frame relais sends (`{type, seq, envelope}`), which Socket.IO encodes once
 * for all sockets. The `auth.token` clients send is not verified (neither does the bare
 * peer): only the broadcast is measured.
 *
 * With `REDIS_URL` set, the server is one node of a Socket.IO cluster scaled as Socket.IO
 * recommends: the Redis Streams adapter (`@socket.io/redis-streams-adapter`, default
 * options) on one `redis` client, so `io.emit` on any node reaches every socket of every
 * node sharing that Redis. `healthz` and the `sent` count answer for this node's sockets.
 *
 * Run: `node bench/peers/socketio/server.mjs` (HOST, PORT, optional REDIS_URL); prints
 * `socketio listening on http://HOST:PORT` and exits when its standard input closes.
 */

import { createServer } from "node:http";
import { createAdapter } from "@socket.io/redis-streams-adapter";
import { createClient } from "redis";
import { Server } from "socket.io";

let seq = 0;

const http = createServer((req, res) => {
  if (req.url === "/broadcast" && req.method === "POST") {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      seq++;
      const envelope = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      io.emit("event", { type: "event", seq, envelope });
      res.writeHead(202, { "content-type": "application/json" });
      res.end(JSON.stringify({ sent: io.engine.clientsCount }));
    });
    return;
  }
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ ok: true, sockets: io.engine.clientsCount }));
    return;
  }
  // Socket.IO answers its own path; everything else is not found.
  if (!req.url?.startsWith("/socket.io/")) {
    res.writeHead(404);
    res.end("Not found");
  }
});

/** The cluster adapter when `REDIS_URL` is set; the default in-memory adapter otherwise. */
async function adapter() {
  const url = process.env.REDIS_URL;
  if (!url) return {};
  const redis = createClient({ url });
  redis.on("error", (error) => console.error(`socketio: Redis error: ${error.message}`));
  await redis.connect();
  return { adapter: createAdapter(redis) };
}

const io = new Server(http, await adapter());

http.listen(Number(process.env.PORT ?? "0"), process.env.HOST ?? "127.0.0.1", () => {
  const { address, port } = http.address();
  console.log(`socketio listening on http://${address}:${port}`);
});

// The harness owns this process: it stops when the harness's pipe closes.
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
