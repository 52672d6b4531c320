/**
 * Structured JSON logs with LogTape, and the per-request log middleware.
 *
 * Nothing is configured at import: the entry point calls {@linkcode configureLogging}
 * once; until then every logger is silent, which keeps tests quiet by default.
 */

import {
  configure,
  getJsonLinesFormatter,
  getLogger,
  type Logger,
  type LogRecord,
  type Sink,
} from "@logtape/logtape";
import type { MiddlewareHandler } from "hono";
import { AsyncLocalStorage } from "node:async_hooks";
import type { AppEnv } from "./auth/principal.ts";

/** The log levels relais accepts (the `RELAIS_LOG_LEVEL` values). */
export type LogLevel = "debug" | "info" | "warning" | "error";

/** Formats a record as one JSON line: `@timestamp`, `level`, `message`, `logger`, then the properties. */
export const formatLogRecord: (record: LogRecord) => string = getJsonLinesFormatter({
  properties: "flatten",
});

/** Writes each record to stdout as one JSON line. */
function stdoutSink(record: LogRecord): void {
  // One string argument: console.log applies no format specifiers to it.
  console.log(formatLogRecord(record).trimEnd());
}

/**
 * Configures every `relais` logger at `level`, writing to `sink` (JSON lines on stdout by
 * default). Calling it again replaces the previous configuration, so tests may call it.
 * Records written inside LogTape's `withContext` carry its properties (a trace's
 * `trace_id`, see `tracing.ts`), across awaits.
 */
export async function configureLogging(level: LogLevel, sink?: Sink): Promise<void> {
  await configure({
    reset: true,
    contextLocalStorage: new AsyncLocalStorage(),
    sinks: { out: sink ?? stdoutSink },
    loggers: [
      { category: ["relais"], sinks: ["out"], lowestLevel: level },
      // LogTape's own warnings (e.g. a failing sink) go to the same place.
      { category: ["logtape", "meta"], sinks: ["out"], lowestLevel: "warning" },
    ],
  });
}

/** Returns the logger for one area of the server, under the `["relais", category]` category. */
export function getLog(category: string): Logger {
  return getLogger(["relais", category]);
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * Hono middleware that gives each request an id and logs one line when it ends.
 *
 * The id is the caller's `X-Request-Id` when it is short and plain, otherwise a new
 * UUID; it is stored as `c.get("requestId")` and echoed in the `X-Request-Id` response
 * header. The line holds `method`, `path` (never the query string, which may carry a
 * connect ticket), `status`, `duration_ms`, `request_id`, and `trace_id` when the route
 * traced the request; headers and bodies are never logged.
 */
export function requestLog(): MiddlewareHandler<AppEnv> {
  const log = getLog("http");
  return async (c, next) => {
    const started = performance.now();
    const incoming = c.req.header("X-Request-Id");
    const id = incoming !== undefined && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    c.set("requestId", id);
    c.header("X-Request-Id", id);
    await next();
    const status = c.res.status;
    // A handler may return a Response built without the prepared headers. A 101
    // (WebSocket upgrade) response cannot be rebuilt, so it is left as it is.
    if (status !== 101 && c.res.headers.get("X-Request-Id") !== id) {
      c.header("X-Request-Id", id);
    }
    const properties = {
      method: c.req.method,
      path: c.req.path,
      status,
      duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
      request_id: id,
      ...(c.get("traceId") === undefined ? {} : { trace_id: c.get("traceId") }),
    };
    if (status >= 500) log.error("HTTP request failed", properties);
    else log.info("HTTP request", properties);
  };
}
