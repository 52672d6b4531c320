/**
 * The ceiling peer: a bare Deno WebSocket broadcast server with relais's frames and no logic.
 *
 * `hello` gets a fixed `welcome`; `POST /broadcast` with a client envelope as its body
 * sends one `event` frame, encoded once, to every open socket. No auth, no storage, no
 * actors: what is left is the cost of the runtime's sockets, which relais cannot beat.
 *
 * Run: `deno run --allow-net --allow-env bench/peers/bare_ws.ts` (HOST, PORT); prints
 * `bare listening on http://HOST:PORT` and exits when its standard input closes.
 */

const sockets = new Set<WebSocket>();
let seq = 0;

function welcome(): string {
  return JSON.stringify({ type: "welcome", user: "", session: "", seq, recovered: false });
}

function handle(req: Request): Response | Promise<Response> {
  const url = new URL(req.url);
  if (url.pathname === "/v1/ws") {
    const { socket, response } = Deno.upgradeWebSocket(req, { protocol: "relais.v1" });
    socket.onopen = () => sockets.add(socket);
    socket.onclose = () => sockets.delete(socket);
    socket.onerror = () => sockets.delete(socket);
    socket.onmessage = (e) => {
      // Same frames as relais, no logic: a hello is answered, anything else is ignored.
      if (typeof e.data === "string" && e.data.startsWith('{"type":"hello"')) {
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
        socket.send(frame);
        sent++;
      }
      return Response.json({ sent }, { status: 202 });
    });
  }
  if (url.pathname === "/healthz") return Response.json({ ok: true, sockets: sockets.size });
  return new Response("Not found", { status: 404 });
}

const server = Deno.serve({
  hostname: Deno.env.get("HOST") ?? "127.0.0.1",
  port: Number(Deno.env.get("PORT") ?? "0"),
  onListen: ({ hostname, port }) => console.log(`bare listening on http://${hostname}:${port}`),
}, handle);

// The harness owns this process: it stops when the harness's pipe closes.
for await (const _ of Deno.stdin.readable) { /* wait for EOF */ }
server.unref();
Deno.exit(0);
