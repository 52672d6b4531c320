/**
 * The push store port: each user's push subscriptions, the durable queue of pushes to
 * decide on and send (ordered by due time, one task per notification and subscription),
 * and the VAPID keys generated in development. The Deno KV adapter is `kv_push_store.ts`.
 */

import type { PushSubscriptionRecord } from "./subscription.ts";

/** One push to decide on: a notification for one subscription of one user. */
export interface PushTask {
  id: string;
  user: string;
  /** The event id. */
  event: string;
  /** The item's seq in the user's stream. */
  seq: number;
  /** The subscription's id ({@linkcode PushSubscriptionRecord.id}). */
  subscription: string;
  /** Failed sends so far. */
  attempts: number;
}

/** A queued task with its due time and version. */
export interface QueuedPush {
  dueAt: number;
  task: PushTask;
  /** Opaque version: an operation on a task that changed meanwhile fails. */
  version: string;
}

/** A VAPID key pair, base64url (the public key uncompressed, the private key raw). */
export interface VapidKeys {
  publicKey: string;
  privateKey: string;
}

/** What the store holds for one user, for an export. */
export interface UserPush {
  subscriptions: PushSubscriptionRecord[];
  tasks: QueuedPush[];
}

/** The store's operations; each one is atomic. */
export interface PushStore {
  /**
   * Saves a subscription (the same endpoint again replaces it); past `max` subscriptions
   * the user's oldest are dropped. An endpoint belongs to one user at a time (a browser
   * shared by two users is the last one's): one that another user holds leaves them in the
   * same commit.
   */
  putSubscription(user: string, subscription: PushSubscriptionRecord, max: number): Promise<void>;
  /** Forgets a subscription; false if there was none. */
  removeSubscription(user: string, id: string): Promise<boolean>;
  getSubscription(user: string, id: string): Promise<PushSubscriptionRecord | undefined>;
  /**
   * The user an endpoint is registered to, by its id; `undefined` when none is, or when it
   * was registered before endpoints were indexed (and not since).
   */
  endpointHolder(id: string): Promise<string | undefined>;
  /** The user's subscriptions, oldest first. */
  listSubscriptions(user: string): Promise<PushSubscriptionRecord[]>;
  /** Which of `users` have at least one subscription (one read per ten users). */
  withSubscriptions(users: string[]): Promise<Set<string>>;

  /** Queues tasks, all due at `dueAt`. */
  add(dueAt: number, tasks: PushTask[]): Promise<void>;
  /** Tasks due at or before `now`, earliest first. */
  due(now: number, limit: number): Promise<QueuedPush[]>;
  /** The earliest due time, if any task is queued. */
  nextDueAt(): Promise<number | undefined>;
  /** How many tasks are queued (counted up to `max`). */
  depth(max?: number): Promise<number>;
  /**
   * Takes a task for one send: moves it to `until`, so that no other runner takes it
   * meanwhile (cluster mode). `undefined` when it changed (another runner took it) or the
   * claim is fenced off (this runner lost its lease).
   */
  claim(entry: QueuedPush, until: number): Promise<QueuedPush | undefined>;
  /** Removes a finished task; false if it changed meanwhile. */
  complete(entry: QueuedPush): Promise<boolean>;
  /** Moves a task to a new due time (and new contents, e.g. attempts). */
  reschedule(entry: QueuedPush, dueAt: number, task: PushTask): Promise<boolean>;

  /** The VAPID keys generated earlier, if any. */
  getVapidKeys(): Promise<VapidKeys | undefined>;
  /** Saves `keys` unless keys are saved already; answers the keys that are. */
  saveVapidKeys(keys: VapidKeys): Promise<VapidKeys>;

  /** Everything held for `user`. */
  ofUser(user: string): Promise<UserPush>;
  /** Removes the user's subscriptions and queued pushes, for the right to erasure. */
  eraseUser(user: string): Promise<{ subscriptions: number; tasks: number }>;
}
