/**
 * Loopback helpers of the development cluster, which the tests and the benchmark share:
 * a free port, and whether a Redis answers on one.
 */

/** A port nothing listens on now, on `hostname` (default `127.0.0.1`). */
export function freePort(hostname = "127.0.0.1"): number {
  const listener = Deno.listen({ hostname, port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Whether a Redis answers `PING` on `hostname:port` (default host `127.0.0.1`). */
export async function redisAnswers(port: number, hostname = "127.0.0.1"): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname, port });
    try {
      await conn.write(new TextEncoder().encode("PING\r\n"));
      const buffer = new Uint8Array(64);
      const n = await conn.read(buffer);
      return n !== null && new TextDecoder().decode(buffer.subarray(0, n)).startsWith("+PONG");
    } finally {
      conn.close();
    }
  } catch {
    return false;
  }
}
