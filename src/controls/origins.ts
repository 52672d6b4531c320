/**
 * The browser Origin allow-list (`RELAIS_ALLOWED_ORIGINS`), shared by CORS and by the
 * WebSocket and SSE endpoints (which browsers open cross-origin without CORS checks).
 */

import type { Context } from "hono";
import { AppError } from "../errors.ts";

/** Decides which browser origins may use the API. */
export interface OriginPolicy {
  /** Whether `origin` is allowed (`"*"` allows any). */
  allows(origin: string): boolean;
  /** The CORS `Access-Control-Allow-Origin` value for a request origin, or `null`. */
  cors(origin: string): string | null;
  /** Throws `forbidden` when the request comes from a browser page of another origin. */
  assert(c: Context): void;
}

/**
 * Builds the policy. Requests without an `Origin` header (servers, native clients) are
 * not browsers' and always pass; a page of the server's own origin always passes.
 */
export function createOriginPolicy(allowed: string[] | "*"): OriginPolicy {
  const list = new Set(allowed === "*" ? [] : allowed);
  const allows = (origin: string) => allowed === "*" || list.has(origin);
  return {
    allows,
    cors: (origin) => (allowed === "*" ? "*" : list.has(origin) ? origin : null),
    assert(c) {
      const origin = c.req.header("Origin");
      if (origin === undefined || allows(origin)) return;
      const host = c.req.header("Host");
      try {
        if (host && new URL(origin).host === host) return;
      } catch { /* not a URL: refused below */ }
      throw new AppError(
        "forbidden",
        `Origin ${
          JSON.stringify(origin.slice(0, 100))
        } is not allowed: add it to RELAIS_ALLOWED_ORIGINS`,
      );
    },
  };
}
