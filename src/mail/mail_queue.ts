/**
 * The durable outgoing-mail queue port. Tasks are ordered by due time; each one is either
 * one notification to decide on (mail it, fold it into a digest, drop it) or one user's
 * digest. Notification tasks are written by the fan-out, in the same commit as the stream
 * items they are about. The Deno KV adapter is `kv_mail_queue.ts`.
 */

import type { MailTask } from "../store/store.ts";

export type { MailTask };

/** A queued task with its due time (and, for the adapter, its version). */
export interface QueuedTask {
  dueAt: number;
  task: MailTask;
  /** Opaque version: an operation on a task that changed meanwhile fails. */
  version: string;
}

/** A notification waiting in a user's digest. */
export interface DigestItem {
  event: string;
  seq: number;
  source: string;
  at: number;
}

/** A mail given up on. */
export interface MailDeadLetter {
  task: MailTask;
  reason: string;
  attempts: number;
  at: number;
}

/** An item waiting in one of a user's digests, with the digest's period. */
export interface UserDigestItem extends DigestItem {
  period: "hourly" | "daily";
}

/** What the queue holds for one user, for an export. */
export interface UserMail {
  /** Their tasks (notifications to decide on and digests), earliest due first. */
  tasks: QueuedTask[];
  digestItems: UserDigestItem[];
  deadLetters: MailDeadLetter[];
}

/** What {@linkcode MailQueue.eraseUser} removed. */
export interface ErasedMail {
  tasks: number;
  digestItems: number;
  deadLetters: number;
}

/** The queue's operations; each one is atomic. */
export interface MailQueue {
  /** Tasks due at or before `now`, earliest first. */
  due(now: number, limit: number): Promise<QueuedTask[]>;
  /** The earliest due time, if any task is queued. */
  nextDueAt(): Promise<number | undefined>;
  /** How many tasks are queued (counted up to `max`). */
  depth(max?: number): Promise<number>;
  /** Adds a task (digest tasks are added through {@linkcode MailQueue.toDigest}). */
  add(dueAt: number, task: MailTask): Promise<void>;
  /**
   * Takes a due task for its send: moves it to `until`, so that no other runner finds it
   * due meanwhile. Answers the task as moved, or `undefined` when it changed meanwhile
   * (another runner took it) or the claim is fenced off (this runner lost its lease).
   */
  claim(entry: QueuedTask, until: number): Promise<QueuedTask | undefined>;
  /** Removes a finished task; false if it changed meanwhile. */
  complete(entry: QueuedTask): Promise<boolean>;
  /** Moves a task to a new due time (and new contents, e.g. attempts). */
  reschedule(entry: QueuedTask, dueAt: number, task: MailTask): Promise<boolean>;
  /**
   * Replaces a notification task by an item of the user's digest, creating the digest
   * task for `digestAt` unless one is scheduled already.
   */
  toDigest(
    entry: QueuedTask,
    period: "hourly" | "daily",
    digestAt: number,
    item: DigestItem,
  ): Promise<boolean>;
  /** Items of a user's digest, oldest first, at most `limit`. */
  digestItems(user: string, period: "hourly" | "daily", limit: number): Promise<DigestItem[]>;
  /**
   * Finishes a digest task: removes it with the items it covered; items left (beyond
   * what one mail lists) get a new digest task due at once.
   */
  completeDigest(entry: QueuedTask, items: DigestItem[]): Promise<boolean>;
  /** Moves a task to the dead letters. */
  deadLetter(entry: QueuedTask, reason: string, now: number): Promise<boolean>;
  listDeadLetters(limit: number): Promise<MailDeadLetter[]>;
  /**
   * Everything the queue holds for `user`. Tasks and dead letters are ordered by time,
   * not by user, so every one of them is looked at (one at a time, never all in memory).
   */
  ofUser(user: string): Promise<UserMail>;
  /**
   * Removes everything the queue holds for `user`, for the right to erasure: their tasks,
   * digest items and schedules, and mail dead letters. A task the mailer is running at
   * that moment fails its own commit; the mail it was about may still go out once.
   */
  eraseUser(user: string): Promise<ErasedMail>;
}
