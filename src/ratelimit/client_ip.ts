/**
 * The client's IP address as the runtime saw it, for per-IP limits.
 *
 * The runtime puts its connection info in the Hono env (`Deno.serve` passes
 * `{remoteAddr}`; `@hono/node-server` passes `{incoming}`); this reads either without
 * calling a runtime API. `X-Forwarded-For` is not trusted: behind a proxy every request
 * would otherwise choose its own IP.
 */

import type { Context } from "hono";

/** The remote address of the request, or `undefined` when the runtime gave none. */
export function clientIp(c: Context): string | undefined {
  const env = c.env as
    | { remoteAddr?: { hostname?: unknown }; incoming?: { socket?: { remoteAddress?: unknown } } }
    | undefined;
  const deno = env?.remoteAddr?.hostname;
  if (typeof deno === "string" && deno) return deno;
  const node = env?.incoming?.socket?.remoteAddress;
  if (typeof node === "string" && node) return node;
  return undefined;
}
