/**
 * Errors that cross the HTTP and WebSocket edges, with one code-to-status map.
 *
 * Domain code throws {@linkcode AppError}; `app.onError` turns it into
 * `{"error": {"code", "message", "details"?}}` and WebSocket handlers into `error` frames.
 */

import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { isConnectionFailure, STORE_RETRY_AFTER_MS } from "./store/redis_kv/unavailable.ts";

/** Machine-readable error codes and the HTTP status each one maps to. */
export const ERROR_STATUS = {
  invalid_request: 400,
  invalid_json: 400,
  validation_failed: 400,
  unauthenticated: 401,
  forbidden: 403,
  feature_disabled: 403,
  not_found: 404,
  /** Messaging: the caller is not a member of the conversation. */
  not_member: 403,
  /** Messaging: the other user blocked the caller. */
  blocked: 403,
  /** Messaging: the message is longer than the configured maximum. */
  too_long: 400,
  /** Messaging: the conversation has the configured maximum of members. */
  conversation_full: 409,
  conflict: 409,
  /** The request's body did not arrive in time. */
  request_timeout: 408,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  unavailable: 503,
  /** The store (Redis in cluster mode) cannot be reached: nothing was accepted; try again. */
  store_unavailable: 503,
  internal: 500,
} as const;

/** A code from {@linkcode ERROR_STATUS}. */
export type ErrorCode = keyof typeof ERROR_STATUS;

/** One problem with one field of an input, as a dotted path and a message. */
export interface FieldIssue {
  path: string;
  message: string;
}

/** An error with a code, a user-facing message and optional details. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly details?: unknown;
  /** Milliseconds after which a refused caller (rate-limited, store unavailable) may try again. */
  readonly retryAfterMs?: number;

  constructor(
    code: ErrorCode,
    message: string,
    options: { details?: unknown; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "AppError";
    this.code = code;
    this.details = options.details;
    this.retryAfterMs = options.retryAfterMs;
  }

  /** The HTTP status for this error's code. */
  get status(): (typeof ERROR_STATUS)[ErrorCode] {
    return ERROR_STATUS[this.code];
  }
}

/**
 * The error of an operation the store could not carry out for want of a connection: 503
 * `store_unavailable`, to be tried again after a short delay. Nothing it asked for may be
 * taken as done (a write whose answer was lost is retried as it is, idempotently).
 */
export function storeUnavailable(cause?: unknown): AppError {
  return new AppError("store_unavailable", "The store is unavailable, try again shortly", {
    retryAfterMs: STORE_RETRY_AFTER_MS,
    cause,
  });
}

/** The JSON body of an error response. */
export function errorBody(
  error: AppError,
): { error: { code: ErrorCode; message: string; details?: unknown; retry_after_ms?: number } } {
  return {
    error: {
      code: error.code,
      message: error.message,
      ...(error.details === undefined ? {} : { details: error.details }),
      ...(error.retryAfterMs === undefined ? {} : { retry_after_ms: error.retryAfterMs }),
    },
  };
}

/** The JSON answer of an {@linkcode AppError}, with `Retry-After` when it has a delay. */
export function errorResponse(c: Context, error: AppError): Response {
  if (error.retryAfterMs !== undefined) {
    c.header("Retry-After", String(Math.ceil(error.retryAfterMs / 1000)));
  }
  // The rest of a body that stopped arriving is not waited for: the connection ends.
  if (error.code === "request_timeout") c.header("Connection", "close");
  return c.json(errorBody(error), error.status);
}

/**
 * The app's error handler: an {@linkcode AppError} or one of Hono's `HTTPException`s
 * becomes its JSON answer, a lost connection to Redis a 503 `store_unavailable`; anything
 * else is reported (never its data) and answered 500.
 */
export function errorHandler(report: (message: string, error: unknown) => void): ErrorHandler {
  return (error, c) => {
    if (error instanceof AppError) return errorResponse(c, error);
    if (isConnectionFailure(error)) return errorResponse(c, storeUnavailable(error));
    if (error instanceof HTTPException) {
      const status = error.status;
      const code = status === 413
        ? "payload_too_large"
        : status === 401
        ? "unauthenticated"
        : "invalid_request";
      return c.json(errorBody(new AppError(code, error.message || "Bad request")), status);
    }
    report(`Unhandled error on ${c.req.method} ${c.req.path}`, error);
    return c.json(errorBody(new AppError("internal", "Internal error")), 500);
  };
}

/** The answer for a path no route serves. */
export const notFound: NotFoundHandler = (c) =>
  c.json(errorBody(new AppError("not_found", `No route for ${c.req.method} ${c.req.path}`)), 404);
