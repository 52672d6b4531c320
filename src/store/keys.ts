/**
 * Every Deno KV key shape relais writes, built in one place.
 *
 * Keys are tuples whose first part names the record kind; ids are strings and
 * sequence numbers are numbers, so that range scans sort them numerically.
 */

/** A published event's record. */
export const eventKey = (id: string) => ["event", id] as const;
/** Every published event's record. */
export const eventPrefix = () => ["event"] as const;
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
/**
 * Chunk `i` of a fan-out job's target list, under the token of the publish attempt that
 * wrote it, so that a racing publish of the same id never overwrites the winner's list.
 * Jobs written before tokens existed have none.
 */
export const jobTargetsKey = (id: string, i: number, token?: string) =>
  token === undefined ? ["job_targets", id, i] as const : ["job_targets", id, token, i] as const;

/**
 * The seqs assigned at creation to the users of target chunk `i` (same order, 0 for
 * none), under the chunk's token.
 */
export const jobSeqsKey = (id: string, i: number, token: string) =>
  ["job_seqs", id, token, i] as const;

/** The last sequence number given to an item of a user's stream. */
export const seqKey = (user: string) => ["seq", user] as const;
/** An item of a user's stream. */
export const streamKey = (user: string, seq: number) => ["stream", user, seq] as const;
/** A user's whole stream. */
export const streamPrefix = (user: string) => ["stream", user] as const;
/**
 * The seq of an event in a user's stream, as earlier versions kept it (the target
 * record holds it): only erasure still reads these.
 */
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

// --- Directory, preferences, collapse keys and mail ---

/** Dimensions of the directory that have an index (`ALL` indexes every user). */
export type DirectoryDimension = "ALL" | "GROUP" | "ROLE" | "STRUCTURE" | "FORMATION" | "CATEGORY";

/** A user's directory entry. */
export const directoryUserKey = (user: string) => ["dir_user", user] as const;
/** Membership of a user in one value of a dimension (`ALL` uses the value `""`). */
export const directoryMemberKey = (dim: DirectoryDimension, value: string, user: string) =>
  ["dir_member", dim, value, user] as const;
/** Every member of one value of a dimension. */
export const directoryMemberPrefix = (dim: DirectoryDimension, value: string) =>
  ["dir_member", dim, value] as const;

/** Every event id of a user's stream, with its seq. */
export const byIdPrefix = (user: string) => ["by_id", user] as const;

/** A user's notification preferences. */
export const preferencesKey = (user: string) => ["prefs", user] as const;

/** The seq of a user's latest item carrying a collapse key. */
export const collapseKey = (user: string, key: string) => ["collapse", user, key] as const;
/** Every collapse key of a user. */
export const collapsePrefix = (user: string) => ["collapse", user] as const;

/** A mail task (one notification to decide on, or one digest), ordered by due time. */
export const mailTaskKey = (dueAt: number, taskId: string) => ["mail_task", dueAt, taskId] as const;
/** Every mail task. */
export const mailTaskPrefix = () => ["mail_task"] as const;
/** An item waiting in a user's digest of one period. */
export const mailDigestItemKey = (user: string, period: string, eventId: string) =>
  ["mail_digest", user, period, eventId] as const;
/** The items of a user's digest of one period. */
export const mailDigestItemPrefix = (user: string, period: string) =>
  ["mail_digest", user, period] as const;
/** Every digest item of a user. */
export const mailDigestUserPrefix = (user: string) => ["mail_digest", user] as const;
/** When a user's digest of one period is due (so one task exists per user and period). */
export const mailDigestDueKey = (user: string, period: string) =>
  ["mail_digest_due", user, period] as const;
/** Every digest schedule of a user. */
export const mailDigestDuePrefix = (user: string) => ["mail_digest_due", user] as const;
/** A mail given up after its attempts, ordered by time. */
export const mailDeadKey = (at: number, taskId: string) => ["mail_dead", at, taskId] as const;
/** Every mail dead letter. */
export const mailDeadPrefix = () => ["mail_dead"] as const;

// ---- Controls and rate limits ----

/** A kill switch, by its id (the scope it applies to, e.g. `structure:univ-x`). */
export const controlKey = (id: string) => ["control", id] as const;
/** Every kill switch. */
export const controlPrefix = () => ["control"] as const;
/** Bumped on every kill switch change, so other processes notice and reload. */
export const controlsVersionKey = () => ["controls_version"] as const;
/** An entry of the kill switch audit log, ordered by time. */
export const controlAuditKey = (at: number, entryId: string) =>
  ["control_audit", at, entryId] as const;
/** The whole kill switch audit log. */
export const controlAuditPrefix = () => ["control_audit"] as const;
/** The hits of one rate limit key in one window of its rule. */
export const rateWindowKey = (key: string, windowMs: number, window: number) =>
  ["rate", key, windowMs, window] as const;

// ---- Messaging: conversations, messages, blocks ----

/** A conversation's slowly changing part (kind, title, context, member ids). */
export const conversationKey = (id: string) => ["conv", id] as const;
/** A conversation's last message; every commit of its actor checks and rewrites it. */
export const conversationHeadKey = (id: string) => ["conv_head", id] as const;
/** One member's state (role, read position, mute) in a conversation. */
export const conversationMemberKey = (id: string, user: string) =>
  ["conv_member", id, user] as const;
/** Every member of a conversation. */
export const conversationMemberPrefix = (id: string) => ["conv_member", id] as const;
/** A member's unread count in a conversation (a `Deno.KvU64`). */
export const conversationUnreadKey = (id: string, user: string) =>
  ["conv_unread", id, user] as const;
/** A conversation's unfinished fan-out job. */
export const conversationJobKey = (id: string) => ["conv_job", id] as const;
/** Every unfinished conversation fan-out job. */
export const conversationJobPrefix = () => ["conv_job"] as const;
/** A message of a conversation, by seq. */
export const messageKey = (id: string, seq: number) => ["msg", id, seq] as const;
/** Every message of a conversation. */
export const messagePrefix = (id: string) => ["msg", id] as const;
/** The seq of the message a user sent with a `client_id` (resends store nothing new). */
export const messageClientKey = (id: string, user: string, clientId: string) =>
  ["msg_client", id, user, clientId] as const;
/** Every client id a user sent with in a conversation. */
export const messageClientPrefix = (id: string, user: string) => ["msg_client", id, user] as const;
/** A conversation in the list of one of its members. */
export const userConversationKey = (user: string, id: string) => ["user_conv", user, id] as const;
/** Every conversation of a user. */
export const userConversationPrefix = (user: string) => ["user_conv", user] as const;
/** `blocker` blocked `blocked`. */
export const blockKey = (blocker: string, blocked: string) => ["block", blocker, blocked] as const;
/** Everyone a user blocked. */
export const blockPrefix = (blocker: string) => ["block", blocker] as const;
/** The reverse of {@linkcode blockKey}: `blocked` was blocked by `blocker`. */
export const blockedByKey = (blocked: string, blocker: string) =>
  ["blocked_by", blocked, blocker] as const;
/** Everyone who blocked a user. */
export const blockedByPrefix = (blocked: string) => ["blocked_by", blocked] as const;
/** The structures a user's credentials last carried (for the same-structure policy). */
export const userStructuresKey = (user: string) => ["user_structures", user] as const;

// ---- Cluster ----

/** The epoch of every stream of a cluster: written once, by the first node. */
export const clusterEpochKey = () => ["cluster", "epoch"] as const;

// ---- Cluster: actor leases ----

/** The holder entry of an actor's lease. */
export const leaseHolderKey = (kind: string, id: string) => ["lease", "holder", kind, id] as const;
/** The token entry of an actor's lease: the fence. */
export const leaseTokenKey = (kind: string, id: string) => ["lease", "token", kind, id] as const;

// ---- Web Push: subscriptions, the queue and the VAPID keys of development ----

/** A user's push subscription. */
export const pushSubscriptionKey = (user: string, id: string) => ["push_sub", user, id] as const;
/** Every subscription of a user. */
export const pushSubscriptionPrefix = (user: string) => ["push_sub", user] as const;
/** A queued task, ordered by due time. */
export const pushTaskKey = (dueAt: number, id: string) => ["push_task", dueAt, id] as const;
/** Every queued task. */
export const pushTaskPrefix = () => ["push_task"] as const;
/** A user's queued task → its due time, so a user's tasks are found without a scan. */
export const pushUserTaskKey = (user: string, id: string) => ["push_task_user", user, id] as const;
/** Every queued task of a user. */
export const pushUserTaskPrefix = (user: string) => ["push_task_user", user] as const;
/** The VAPID keys generated in development. */
export const pushVapidKey = () => ["push_vapid"] as const;
/** Present while a user has at least one subscription: fan-outs skip everyone else at once. */
export const pushUserKey = (user: string) => ["push_user", user] as const;
/**
 * The user a push endpoint is registered to, by the endpoint's id (a hash: the key stays
 * short and holds no URL). Written in the commit of the subscription it names.
 */
export const pushEndpointKey = (id: string) => ["push_endpoint", id] as const;
