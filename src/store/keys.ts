/**
 * Every Deno KV key shape relais writes, built in one place.
 *
 * Keys are tuples whose first part names the record kind; ids are strings and
 * sequence numbers are numbers, so that range scans sort them numerically.
 */

/** A published event's record. */
export const eventKey = (id: string) => ["event", id] as const;
/** Chunk `i` of a published event's JSON body (values are capped at 64 KiB). */
export const eventBodyKey = (id: string, i: number) => ["event_body", id, i] as const;
/** Delivery state of one event for one of its targets. */
export const targetKey = (id: string, user: string) => ["event_target", id, user] as const;
/** All targets of an event. */
export const targetPrefix = (id: string) => ["event_target", id] as const;
/** One of an event's status counters (`delivered`, `acked`, `failed`). */
export const counterKey = (id: string, name: CounterName) => ["event_count", id, name] as const;
/** Names of an event's status counters. */
export type CounterName = "delivered" | "acked" | "failed";

/** An unfinished fan-out job of an event. */
export const jobKey = (id: string) => ["job", id] as const;
/** All unfinished fan-out jobs. */
export const jobPrefix = () => ["job"] as const;
/** Chunk `i` of a fan-out job's target list. */
export const jobTargetsKey = (id: string, i: number) => ["job_targets", id, i] as const;

/** The last sequence number given to an item of a user's stream. */
export const seqKey = (user: string) => ["seq", user] as const;
/** An item of a user's stream. */
export const streamKey = (user: string, seq: number) => ["stream", user, seq] as const;
/** A user's whole stream. */
export const streamPrefix = (user: string) => ["stream", user] as const;
/** The seq of an event in a user's stream. */
export const byIdKey = (user: string, id: string) => ["by_id", user, id] as const;
/** An unread inbox item of a user. */
export const unreadKey = (user: string, seq: number) => ["unread", user, seq] as const;
/** All unread inbox items of a user. */
export const unreadPrefix = (user: string) => ["unread", user] as const;
/** An item the user has not acknowledged yet. */
export const pendingKey = (user: string, seq: number) => ["pending", user, seq] as const;
/** All items a user has not acknowledged yet. */
export const pendingPrefix = (user: string) => ["pending", user] as const;

/** A dead letter, ordered by the time it was recorded. */
export const deadLetterKey = (at: number, user: string, seq: number) =>
  ["dead_letter", at, user, seq] as const;
/** All dead letters. */
export const deadLetterPrefix = () => ["dead_letter"] as const;

/** A single-use connect ticket, by the hash of the ticket. */
export const ticketKey = (hash: string) => ["ticket", hash] as const;
