/**
 * The client's IP address, for per-IP limits.
 *
 * The runtime puts its connection info in the Hono env (`Deno.serve` passes
 * `{remoteAddr}`; `@hono/node-server` passes `{incoming}`); this reads either without
 * calling a runtime API. `X-Forwarded-For` is believed only from trusted proxies
 * (`RELAIS_TRUSTED_PROXIES`): anyone else could choose their own address with it, and
 * behind the gateway or a campus NAT every client would otherwise share one address.
 */

import type { Context } from "hono";
import ipaddr from "ipaddr.js";

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parses one address, unwrapping IPv4-mapped IPv6 (`::ffff:10.0.0.1`); `undefined` if invalid. */
function parseAddress(text: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  const trimmed = text.trim().replace(/^\[(.*)\]$/, "$1");
  if (!ipaddr.isValid(trimmed)) return undefined;
  const address = ipaddr.parse(trimmed);
  return address.kind() === "ipv6" && (address as ipaddr.IPv6).isIPv4MappedAddress()
    ? (address as ipaddr.IPv6).toIPv4Address()
    : address;
}

/**
 * Parses a CIDR (`10.0.0.0/8`, `fd00::/8`) or a single address (a /32 or /128);
 * `undefined` when it is neither.
 */
export function parseCidr(text: string): Range | undefined {
  const trimmed = text.trim();
  if (trimmed.includes("/")) {
    if (!ipaddr.isValidCIDR(trimmed)) return undefined;
    const [address, bits] = ipaddr.parseCIDR(trimmed);
    return address.kind() === "ipv6" && (address as ipaddr.IPv6).isIPv4MappedAddress() &&
        bits >= 96
      ? [(address as ipaddr.IPv6).toIPv4Address(), bits - 96]
      : [address, bits];
  }
  const address = parseAddress(trimmed);
  return address && [address, address.kind() === "ipv4" ? 32 : 128];
}

/** The address the runtime saw the request come from, or `undefined` when it gave none. */
export function peerAddress(c: Context): string | undefined {
  const env = c.env as
    | { remoteAddr?: { hostname?: unknown }; incoming?: { socket?: { remoteAddress?: unknown } } }
    | undefined;
  const deno = env?.remoteAddr?.hostname;
  if (typeof deno === "string" && deno) return deno;
  const node = env?.incoming?.socket?.remoteAddress;
  if (typeof node === "string" && node) return node;
  return undefined;
}

/** Finds a request's client address; built by {@linkcode createClientIp}. */
export type ClientIp = (c: Context) => string | undefined;

/**
 * Builds the client-address finder for the given trusted proxies (CIDRs). With none,
 * the peer address is the client. Otherwise, while the hop is a trusted proxy, the
 * address it forwarded (the right-most `X-Forwarded-For` entry not yet used) is the next
 * hop; the first untrusted hop is the client. A malformed entry ends the walk at the
 * proxy that forwarded it.
 */
export function createClientIp(trustedProxies: readonly string[]): ClientIp {
  const ranges = trustedProxies.map((cidr) => {
    const range = parseCidr(cidr);
    if (!range) throw new Error(`Invalid trusted proxy "${cidr}": expected a CIDR`);
    return range;
  });
  const trusted = (address: ipaddr.IPv4 | ipaddr.IPv6) =>
    ranges.some(([base, bits]) => base.kind() === address.kind() && address.match(base, bits));

  return (c) => {
    const peer = peerAddress(c);
    if (ranges.length === 0 || peer === undefined) return peer;
    let hop = parseAddress(peer);
    if (!hop) return peer;
    const forwarded = (c.req.header("x-forwarded-for") ?? "").split(",").filter((s) => s.trim());
    let client = hop;
    while (trusted(hop)) {
      const next = forwarded.pop();
      const parsed = next === undefined ? undefined : parseAddress(next);
      if (!parsed) break;
      hop = parsed;
      client = parsed;
    }
    return client.toString();
  };
}
