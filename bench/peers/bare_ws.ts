/**
 * The ceiling peer: a bare Deno WebSocket broadcast server with relais's frames and no logic.
 *
 * `hello` gets a fixed `welcome`; `POST /broadcast` with a client envelope as its body
 * sends one `event` frame, encoded once, to every open socket. `POST /v1/events` takes the
 * request relais takes and sends the event to the sockets of its USER audience, each with
 * a seq of its own, the user being the one a socket's `hello` names (`user`); it answers
 * 202 at once. No auth, no storage, no actors (unless asked, below): what is left is the
 * cost of the runtime's sockets and of the clients driving them, which relais cannot beat.
 *
 * With `BARE_ACTORS=1` it is the `bare-actor` peer: every socket gets an XState actor of the
 * cheapest machine there is (`socketio/socket_actors.mjs`, shared with the Node peer),
 * started with the socket's `hello`, and every frame goes to its socket through its actor,
 * as relais's items go through each user's actor (the design's rule). What it adds to the
 * bare server is the least one actor per connected user costs, measured where relais pays
 * it: among the sockets, their buffers and the collector's work.
 *
 * Run: `deno run --allow-net --allow-env bench/peers/bare_ws.ts` (HOST, PORT,
 * BARE_ACTORS); prints `bare listening on http://HOST:PORT` (`bare-actor listening…`) and
 * exits when its standard input closes.
 */

import { socketActors } from "./socketio/socket_actors.mjs";

/** Whether every socket's frames go through an actor of its own. */
const ACTORS = Deno.env.get("BARE_ACTORS") === "1";
const LABEL = ACTORS ? "bare-actor" : "bare";

/** The actor of each welcomed socket (`bare-actor` only). */
const actors = socketActors((socket: WebSocket, frame: string) => socket.send(frame));

/** Sends `frame` to `socket`, through its actor when sockets have one. */
function deliver(socket: WebSocket, frame: string) {
  if (ACTORS) actors.push(socket, frame);
  else socket.send(frame);
}

const sockets = new Set<WebSocket>();
let seq = 0;
/** The socket of each user a `hello` named, and the last seq each such socket was sent. */
const byUser = new Map<string, WebSocket>();
const seqs = new WeakMap<WebSocket, number>();

function welcome(): string {
  return JSON.stringify({ type: "welcome", user: "", session: "", seq, recovered: false });
}

function handle(req: Request): Response | Promise<Response> {
  const url = new URL(req.url);
  if (url.pathname === "/v1/ws") {
    const { socket, response } = Deno.upgradeWebSocket(req, { protocol: "relais.v1" });
    socket.onopen = () => sockets.add(socket);
    let user: string | undefined;
    const forget = () => {
      sockets.delete(socket);
      actors.close(socket);
      if (user !== undefined && byUser.get(user) === socket) byUser.delete(user);
    };
    socket.onclose = forget;
    socket.onerror = forget;
    socket.onmessage = (e) => {
      // Same frames as relais, no logic: a hello is answered, anything else is ignored.
      if (typeof e.data === "string" && e.data.startsWith('{"type":"hello"')) {
        let named: unknown;
        try {
          named = (JSON.parse(e.data) as { user?: unknown }).user;
        } catch { /* not JSON: welcomed all the same, with no user */ }
        if (typeof named === "string") {
          user = named;
          byUser.set(user, socket);
          seqs.set(socket, 0);
        }
        if (ACTORS) actors.open(socket);
        socket.send(welcome());
      }
    };
    return response;
  }
  if (url.pathname === "/broadcast" && req.method === "POST") {
    return req.text().then((envelope) => {
      seq++;
      const frame = `{"type":"event","seq":${seq},"envelope":${envelope}}`;
      let sent = 0;
      for (const socket of sockets) {
        if (socket.readyState !== WebSocket.OPEN) continue;
        deliver(socket, frame);
        sent++;
      }
      return Response.json({ sent }, { status: 202 });
    });
  }
  if (url.pathname === "/v1/events" && req.method === "POST") {
    return req.json().then(({ metadata, payload, routing }) => {
      if (!metadata || typeof metadata !== "object") {
        return Response.json({ error: "metadata missing" }, { status: 400 });
      }
      const envelope = JSON.stringify({ metadata, payload });
      const targets = routing?.audience?.type === "USER" ? routing.audience.targets : [];
      for (const target of Array.isArray(targets) ? targets : []) {
        const socket = byUser.get(String(target));
        if (!socket || socket.readyState !== WebSocket.OPEN) continue;
        const next = (seqs.get(socket) ?? 0) + 1;
        seqs.set(socket, next);
        deliver(socket, `{"type":"event","seq":${next},"envelope":${envelope}}`);
      }
      return Response.json({ id: metadata.id }, { status: 202 });
    }, () => Response.json({ error: "not JSON" }, { status: 400 }));
  }
  if (url.pathname === "/healthz") {
    return Response.json({ ok: true, sockets: sockets.size, ...actors.counts() });
  }
  return new Response("Not found", { status: 404 });
}

const server = Deno.serve({
  hostname: Deno.env.get("HOST") ?? "127.0.0.1",
  port: Number(Deno.env.get("PORT") ?? "0"),
  // relais's listen backlog (`LISTEN_BACKLOG`): the storms compare the two on equal terms.
  tcpBacklog: 4096,
  onListen: ({ hostname, port }) => console.log(`${LABEL} listening on http://${hostname}:${port}`),
}, handle);

// The harness owns this process: it stops when the harness's pipe closes.
for await (const _ of Deno.stdin.readable) { /* wait for EOF */ }
server.unref();
Deno.exit(0);
