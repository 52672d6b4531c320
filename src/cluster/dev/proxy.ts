/**
 * A round-robin TCP proxy, to put several relais nodes behind one port on a developer's
 * machine (`deno task cluster`). It pipes bytes and nothing else: each accepted connection
 * goes whole to the next backend that accepts one, so WebSocket upgrades, SSE and
 * keep-alive requests pass through untouched (a kept-alive connection stays on its node,
 * as behind any layer-4 balancer). A backend that refuses is skipped for the next one.
 * It is a tool for trying cluster mode, not a load balancer for production.
 */

/** Where a backend listens. */
export interface Backend {
  hostname: string;
  port: number;
}

/** Options of {@linkcode startProxy}. */
export interface ProxyOptions {
  /** Listen address; `127.0.0.1` by default. */
  hostname?: string;
  /** Listen port; `0` for any free port. */
  port: number;
  /** The backends, taken in turn. */
  backends: readonly Backend[];
}

/** A running proxy. */
export interface Proxy {
  /** Where it listens. */
  readonly addr: Deno.NetAddr;
  /** Stops accepting, cuts the open connections and resolves once all have ended. */
  close(): Promise<void>;
}

const CHUNK_BYTES = 64 * 1024;

/**
 * Listens on `options.hostname:options.port` and hands each connection to the backends in
 * turn, skipping those that refuse; a connection no backend accepts is closed.
 */
export function startProxy(options: ProxyOptions): Proxy {
  const backends = [...options.backends];
  if (backends.length === 0) throw new Error("Cannot start the proxy: no backend");
  const listener = Deno.listen({ hostname: options.hostname ?? "127.0.0.1", port: options.port });
  const open = new Set<Deno.Conn>();
  const handlers = new Set<Promise<void>>();
  let next = 0;
  let closing = false;

  /** The next backend that accepts a connection, from the one after the last used. */
  async function connectNext(): Promise<Deno.TcpConn | undefined> {
    const first = next;
    next = (next + 1) % backends.length;
    for (let i = 0; i < backends.length; i++) {
      const index = (first + i) % backends.length;
      try {
        const conn = await Deno.connect(backends[index]);
        // A refused backend is passed over by the next connections too.
        if (i > 0) next = (index + 1) % backends.length;
        return conn;
      } catch {
        // Refused or unreachable: try the next one.
      }
    }
    return undefined;
  }

  async function handle(client: Deno.Conn): Promise<void> {
    open.add(client);
    let backend: Deno.Conn | undefined;
    try {
      backend = await connectNext();
      if (!backend || closing) return;
      open.add(backend);
      await Promise.all([pipe(client, backend), pipe(backend, client)]);
    } finally {
      for (const conn of [client, backend]) {
        if (!conn) continue;
        open.delete(conn);
        closeQuietly(conn);
      }
    }
  }

  const accepting = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return; // the listener was closed
      }
      if (closing) {
        closeQuietly(conn);
        continue;
      }
      const handler = handle(conn).catch(() => {});
      handlers.add(handler);
      handler.finally(() => handlers.delete(handler));
    }
  })();

  return {
    addr: listener.addr as Deno.NetAddr,
    async close() {
      if (closing) return;
      closing = true;
      listener.close();
      await accepting;
      for (const conn of open) closeQuietly(conn);
      await Promise.all(handlers);
    },
  };
}

/**
 * Copies `from` to `to` until `from` ends, then half-closes `to` so its peer sees the end
 * too; on an error both connections are closed, which ends the other direction.
 */
async function pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(CHUNK_BYTES);
  try {
    for (;;) {
      const n = await from.read(buffer);
      if (n === null) break;
      let written = 0;
      while (written < n) written += await to.write(buffer.subarray(written, n));
    }
    await to.closeWrite();
  } catch {
    closeQuietly(from);
    closeQuietly(to);
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}
