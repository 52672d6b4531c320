/**
 * What a Redis connection failure looks like, recognised in one place: the store on Redis
 * turns these into `store_unavailable` (503 with a short `Retry-After`), and the HTTP
 * error handler does the same for one that reaches it from another Redis client.
 *
 * ioredis rejects a command for want of a connection in a few ways: `Connection is
 * closed.` (the client ended), `Stream isn't writeable …` (no connection and no offline
 * queue), `MaxRetriesPerRequestError` (the connection dropped with the command queued or
 * in flight), `Command timed out` (`commandTimeout`: a server that stopped answering), an
 * `AbortError` (a pipeline cut by a close), or a socket error (`ECONNREFUSED`,
 * `ECONNRESET`, …); a Redis Cluster's client has its own (`Cluster isn't ready …`, `None of
 * startup nodes is available`, …). Redis itself answers some commands with an error meaning "not now":
 * loading its data after a restart, busy with a script, refusing writes it cannot persist
 * (`MISCONF`), a replica after a failover (`READONLY`), a cluster without a quorum.
 *
 * This module imports nothing, so that the error module can use it.
 */

/** ioredis's error names that always mean the connection failed. */
const FAILURE_NAMES = new Set([
  "MaxRetriesPerRequestError",
  "ClusterAllFailedError",
  "StoreNotConnected",
]);

/** Socket error codes of a connection that could not be made or was lost. */
const SOCKET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/** Messages of ioredis's plain `Error`s that mean no connection (matched at the start). */
const FAILURE_MESSAGES = [
  "Connection is closed",
  "Stream isn't writeable",
  "Command timed out",
  "Command aborted due to connection close",
  "Reached the max retries per request limit",
  "connect ECONNREFUSED",
  "connect ETIMEDOUT",
  // A Redis Cluster's client (`redis+cluster://`).
  "Cluster isn't ready",
  "Cluster is disconnect",
  "Cluster is ended",
  "None of startup nodes is available",
  "Node is disconnected",
];

/** Redis error replies that mean "not now" rather than "wrong command" (their first word). */
const UNAVAILABLE_REPLIES = new Set([
  "LOADING",
  "BUSY",
  "MISCONF",
  "READONLY",
  "MASTERDOWN",
  "CLUSTERDOWN",
  "TRYAGAIN",
]);

/** How long a caller refused for an unreachable store should wait before trying again, ms. */
export const STORE_RETRY_AFTER_MS = 2000;

/**
 * Thrown by the store on Redis when no connection came up in time for a command; it is a
 * connection failure for {@linkcode isConnectionFailure}.
 */
export class StoreNotConnected extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StoreNotConnected";
  }
}

/**
 * Whether `error` says that Redis could not be reached or could not serve a command now
 * (see the module's description), rather than that the command was wrong.
 */
export function isConnectionFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (FAILURE_NAMES.has(error.name)) return true;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && SOCKET_CODES.has(code)) return true;
  const message = String(error.message);
  if (FAILURE_MESSAGES.some((start) => message.startsWith(start))) return true;
  if (error.name === "ReplyError" && UNAVAILABLE_REPLIES.has(message.split(" ", 1)[0])) {
    return true;
  }
  return false;
}
