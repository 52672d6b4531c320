/** Calls to the relais HTTP API with the client's credentials and relais' error shape. */

import { HttpError, retryAfterMs } from "./transport.ts";

/** Sends HTTP requests to relais. */
export interface Http {
  /** A JSON request; resolves with the parsed answer, rejects with an {@linkcode HttpError}. */
  request<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
  /** `Authorization` when the client has a token, else nothing (cookies / gateway). */
  headers(): Promise<Record<string, string>>;
}

/** What {@linkcode createHttp} needs. */
export interface HttpOptions {
  baseUrl: string;
  token?: string | (() => string | Promise<string>);
  fetch: typeof fetch;
}

/** Creates the HTTP helper. */
export function createHttp(options: HttpOptions): Http {
  async function headers(): Promise<Record<string, string>> {
    const token = typeof options.token === "function" ? await options.token() : options.token;
    return token ? { authorization: `Bearer ${token}` } : {};
  }

  return {
    headers,
    async request<T>(method: string, path: string, body?: unknown): Promise<T> {
      const h = await headers();
      if (body !== undefined) h["content-type"] = "application/json";
      const res = await options.fetch(`${options.baseUrl}${path}`, {
        method,
        headers: h,
        body: body === undefined ? undefined : JSON.stringify(body),
        // Without a token, the session cookie or the gateway authenticates the user.
        credentials: h.authorization ? "same-origin" : "include",
      });
      const text = await res.text();
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      if (!res.ok) {
        const error = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
        throw new HttpError(
          res.status,
          error?.code ?? "http_error",
          error?.message ?? `${method} ${path} failed with status ${res.status}`,
          retryAfterMs(res.headers.get("retry-after")),
        );
      }
      return json as T;
    },
  };
}
