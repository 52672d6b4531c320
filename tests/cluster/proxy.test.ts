/**
 * The development cluster's TCP proxy over three real HTTP servers on loopback: each
 * connection goes to the next backend in turn, a WebSocket and an SSE stream pass through
 * as they come, a backend that refuses is skipped, and closing cuts what is open.
 */

import assert from "node:assert/strict";
import { type Proxy, startProxy } from "../../src/cluster/dev/proxy.ts";

/** A backend that answers its name, echoes WebSocket messages and streams SSE on demand. */
function backend(name: string) {
  let sendSecond: (() => void) | undefined;
  const secondRequested = new Promise<void>((resolve) => sendSecond = resolve);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/ws") {
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.onmessage = (e) => socket.send(`${name}:${e.data}`);
      return response;
    }
    if (path === "/sse") {
      const encoder = new TextEncoder();
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(encoder.encode(`data: ${name} first\n\n`));
          await secondRequested;
          controller.enqueue(encoder.encode(`data: ${name} second\n\n`));
          controller.close();
        },
      });
      return new Response(body, { headers: { "Content-Type": "text/event-stream" } });
    }
    if (path === "/sse/next") {
      sendSecond?.();
      return new Response("ok");
    }
    return new Response(name);
  });
  // `release` ends a pending SSE stream, so the server can always shut down.
  return { name, server, port: server.addr.port, release: () => sendSecond?.() };
}

/** One request on a connection of its own: the status and body it got. */
async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(
      new TextEncoder().encode(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`,
      ),
    );
    let text = "";
    const decoder = new TextDecoder();
    for await (const chunk of conn.readable) text += decoder.decode(chunk, { stream: true });
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
    return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
  } catch (e) {
    conn.close();
    throw e;
  }
}

async function withProxy(
  fn: (proxy: Proxy, servers: ReturnType<typeof backend>[]) => Promise<void>,
): Promise<void> {
  const servers = ["a", "b", "c"].map(backend);
  const proxy = startProxy({
    port: 0,
    backends: servers.map((s) => ({ hostname: "127.0.0.1", port: s.port })),
  });
  try {
    await fn(proxy, servers);
  } finally {
    await proxy.close();
    servers.forEach((s) => s.release());
    await Promise.all(servers.map((s) => s.server.shutdown()));
  }
}

Deno.test("proxy hands each connection to the next backend in turn", async () => {
  await withProxy(async (proxy) => {
    const names: string[] = [];
    for (let i = 0; i < 6; i++) {
      const { status, body } = await get(proxy.addr.port, "/");
      assert.equal(status, 200);
      names.push(body);
    }
    assert.deepEqual(names, ["a", "b", "c", "a", "b", "c"]);
  });
});

Deno.test("proxy skips a backend that refuses connections", async () => {
  await withProxy(async (proxy, servers) => {
    assert.equal((await get(proxy.addr.port, "/")).body, "a");
    await servers[1].server.shutdown(); // b stops listening: it now refuses
    const names: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { status, body } = await get(proxy.addr.port, "/");
      assert.equal(status, 200);
      names.push(body);
    }
    assert.deepEqual(names, ["c", "a", "c", "a"]);
  });
});

Deno.test("proxy passes a WebSocket through: its messages are echoed", async () => {
  await withProxy(async (proxy) => {
    const socket = new WebSocket(`ws://127.0.0.1:${proxy.addr.port}/ws`);
    const closed = new Promise((resolve) => socket.onclose = resolve);
    try {
      const replies: string[] = [];
      const twoReplies = new Promise<void>((resolve, reject) => {
        socket.onopen = () => {
          socket.send("hello");
          socket.send("again");
        };
        socket.onmessage = (e) => {
          replies.push(String(e.data));
          if (replies.length === 2) resolve();
        };
        socket.onerror = () => reject(new Error("The WebSocket through the proxy failed"));
      });
      await twoReplies;
      assert.deepEqual(replies, ["a:hello", "a:again"]);
    } finally {
      socket.close();
      await closed;
    }
  });
});

Deno.test("proxy passes an SSE stream through as it comes, not once it ends", async () => {
  await withProxy(async (proxy, servers) => {
    const client = Deno.createHttpClient({});
    try {
      const res = await fetch(`http://127.0.0.1:${proxy.addr.port}/sse`, {
        client,
        signal: AbortSignal.timeout(10_000),
      });
      assert.equal(res.headers.get("content-type"), "text/event-stream");
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      // The backend sends its second event only once asked: the first must arrive alone.
      while (!text.includes("data: a first\n\n")) text += (await reader.read()).value ?? "";
      assert.equal((await get(servers[0].port, "/sse/next")).body, "ok");
      for (let r = await reader.read(); !r.done; r = await reader.read()) text += r.value;
      assert.equal(text, "data: a first\n\ndata: a second\n\n");
    } finally {
      client.close();
    }
  });
});

Deno.test("proxy close cuts the open connections and stops listening", async () => {
  const servers = ["a", "b", "c"].map(backend);
  const proxy = startProxy({
    port: 0,
    backends: servers.map((s) => ({ hostname: "127.0.0.1", port: s.port })),
  });
  const port = proxy.addr.port;
  const socket = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  const closed = new Promise<CloseEvent>((resolve) => socket.onclose = resolve);
  socket.onerror = () => {}; // a cut connection is an error for the WebSocket API
  try {
    const opened = new Promise((resolve) => socket.onopen = resolve);
    await Promise.race([opened, closed.then(() => assert.fail("The WebSocket did not open"))]);
    await proxy.close();
    await closed; // the cut reached the client
    await assert.rejects(
      Deno.connect({ hostname: "127.0.0.1", port }),
      Deno.errors.ConnectionRefused,
    );
  } finally {
    await proxy.close();
    servers.forEach((s) => s.release());
    await Promise.all(servers.map((s) => s.server.shutdown()));
  }
});
