/**
 * The listen backlog, on Deno and on Node: while relais's event loop cannot accept (the
 * process is stopped here, as a loop busy with a reconnect storm would be), the kernel
 * completes handshakes up to the backlog and keeps them for relais; past it, it drops them
 * and each client tries again only after TCP's one-second retransmission timeout. The
 * runtimes' default backlog (511) keeps 512 of the 1,200 clients below; relais's keeps
 * them all, and accepts them once it runs again.
 */

import assert from "node:assert/strict";
import { LISTEN_BACKLOG } from "../../src/start.ts";
import { type ChildServer, spawnServer, type TestRuntime } from "../_support/process.ts";
import { WITHOUT_NODE } from "../node/_support.ts";

/** Clients connecting at once: more than the runtimes' default backlog holds. */
const CLIENTS = 1_200;
/** How long the clients wait for their handshakes (those the kernel keeps complete at once). */
const HANDSHAKE_WAIT_MS = 2_000;

/** The kernel's cap on any listen backlog. */
const somaxconn = Number(Deno.readTextFileSync("/proc/sys/net/core/somaxconn").trim());

/** Connects `count` clients to `origin`; answers those whose handshake completed in time. */
async function connectAll(origin: string, count: number): Promise<Deno.TcpConn[]> {
  const { hostname, port } = new URL(origin);
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), HANDSHAKE_WAIT_MS);
  try {
    const tries = await Promise.allSettled(
      Array.from(
        { length: count },
        () => Deno.connect({ hostname, port: Number(port), signal: abort.signal }),
      ),
    );
    return tries.flatMap((t) => t.status === "fulfilled" ? [t.value] : []);
  } finally {
    clearTimeout(timer);
  }
}

/** Sends `GET /healthz` on a raw connection; answers the response's first bytes. */
async function askHealth(conn: Deno.TcpConn): Promise<string> {
  await conn.write(
    new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: relais\r\nConnection: close\r\n\r\n"),
  );
  const buffer = new Uint8Array(64);
  const n = await conn.read(buffer);
  return new TextDecoder().decode(buffer.subarray(0, n ?? 0));
}

async function keepsABurst(runtime: TestRuntime) {
  assert.ok(somaxconn > 600, `net.core.somaxconn is ${somaxconn}: the kernel caps every backlog`);
  const server: ChildServer = await spawnServer({}, { runtime });
  let conns: Deno.TcpConn[] = [];
  try {
    server.process.kill("SIGSTOP");
    conns = await connectAll(server.origin, CLIENTS);
    assert.equal(conns.length, Math.min(CLIENTS, LISTEN_BACKLOG + 1, somaxconn + 1));
    server.process.kill("SIGCONT");
    // Running again, it accepts the connections the kernel kept (the last one queued
    // answers a request) and new ones.
    assert.match(await askHealth(conns.at(-1)!), /^HTTP\/1\.1 200 /);
    const res = await fetch(`${server.origin}/healthz`);
    assert.equal(res.status, 200);
    await res.body?.cancel();
  } finally {
    for (const conn of conns) conn.close();
    server.process.kill("SIGCONT");
    await server.kill("SIGKILL");
  }
}

Deno.test("a stopped relais on Deno keeps a burst of handshakes past the default backlog", () =>
  keepsABurst("deno"));

Deno.test({
  name: "a stopped relais on Node keeps a burst of handshakes past the default backlog",
  ignore: WITHOUT_NODE,
  fn: () => keepsABurst("node"),
});
