/** The Deno KV adapter of the mail queue. */

import * as keys from "../store/keys.ts";
import { deleteAll } from "../store/kv/_commit.ts";
import type {
  DigestItem,
  MailDeadLetter,
  MailQueue,
  MailTask,
  QueuedTask,
  UserDigestItem,
  UserMail,
} from "./mail_queue.ts";

function toQueued(entry: Deno.KvEntry<MailTask>): QueuedTask {
  return { dueAt: entry.key[1] as number, task: entry.value, version: entry.versionstamp };
}

const digestTaskId = (user: string, period: string) => `digest:${period}:${user}`;

/** Options of {@linkcode createKvMailQueue}. */
export interface KvMailQueueOptions {
  /**
   * In cluster mode, adds to each claim's commit the check that this node still holds the
   * mailer's lease, so that a mailer that lost it claims (and sends) nothing more.
   */
  fence?(op: Deno.AtomicOperation): Deno.AtomicOperation;
}

/** Creates the mail queue on an open Deno KV handle. */
export function createKvMailQueue(kv: Deno.Kv, options: KvMailQueueOptions = {}): MailQueue {
  const taskKey = (entry: QueuedTask) => keys.mailTaskKey(entry.dueAt, entry.task.id);
  const checkOf = (entry: QueuedTask) => ({ key: taskKey(entry), versionstamp: entry.version });

  /** The user's tasks and dead letters, with their keys: the whole queue is looked at. */
  async function entriesOf(user: string) {
    const tasks: Deno.KvEntry<MailTask>[] = [];
    const dead: Deno.KvEntry<MailDeadLetter>[] = [];
    const batch = { batchSize: 500 };
    for await (const e of kv.list<MailTask>({ prefix: keys.mailTaskPrefix() }, batch)) {
      if (e.value.user === user) tasks.push(e);
    }
    for await (const e of kv.list<MailDeadLetter>({ prefix: keys.mailDeadPrefix() }, batch)) {
      if (e.value.task.user === user) dead.push(e);
    }
    const digest: Deno.KvEntry<DigestItem>[] = [];
    for await (const e of kv.list<DigestItem>({ prefix: keys.mailDigestUserPrefix(user) })) {
      digest.push(e);
    }
    return { tasks, dead, digest };
  }

  return {
    async due(now, limit) {
      const out: QueuedTask[] = [];
      const iter = kv.list<MailTask>({
        start: keys.mailTaskKey(0, ""),
        end: keys.mailTaskKey(now + 1, ""),
      }, { limit });
      for await (const entry of iter) out.push(toQueued(entry));
      return out;
    },
    async nextDueAt() {
      for await (
        const entry of kv.list<MailTask>({ prefix: keys.mailTaskPrefix() }, { limit: 1 })
      ) {
        return entry.key[1] as number;
      }
      return undefined;
    },
    async depth(max = 100_000) {
      let n = 0;
      for await (const _ of kv.list({ prefix: keys.mailTaskPrefix() }, { limit: max })) n++;
      return n;
    },
    async add(dueAt, task) {
      await kv.set(keys.mailTaskKey(dueAt, task.id), task);
    },
    async claim(entry, until) {
      const key = keys.mailTaskKey(until, entry.task.id);
      const op = kv.atomic().check(checkOf(entry)).delete(taskKey(entry)).set(key, entry.task);
      const res = await (options.fence ? options.fence(op) : op).commit();
      return res.ok ? { dueAt: until, task: entry.task, version: res.versionstamp } : undefined;
    },
    async complete(entry) {
      return (await kv.atomic().check(checkOf(entry)).delete(taskKey(entry)).commit()).ok;
    },
    async reschedule(entry, dueAt, task) {
      const op = kv.atomic().check(checkOf(entry)).delete(taskKey(entry))
        .set(keys.mailTaskKey(dueAt, task.id), task);
      if (task.kind === "digest") op.set(keys.mailDigestDueKey(task.user, task.period), dueAt);
      return (await op.commit()).ok;
    },
    async toDigest(entry, period, digestAt, item) {
      const { user } = entry.task;
      for (let attempt = 0; attempt < 10; attempt++) {
        const scheduled = await kv.get<number>(keys.mailDigestDueKey(user, period));
        const op = kv.atomic().check(checkOf(entry)).check(scheduled).delete(taskKey(entry))
          .set(keys.mailDigestItemKey(user, period, item.event), item);
        if (scheduled.value === null) {
          const task: MailTask = {
            kind: "digest",
            id: digestTaskId(user, period),
            user,
            period,
            attempts: 0,
          };
          op.set(keys.mailDigestDueKey(user, period), digestAt)
            .set(keys.mailTaskKey(digestAt, task.id), task);
        }
        if ((await op.commit()).ok) return true;
        const still = await kv.get(taskKey(entry));
        if (still.versionstamp !== entry.version) return false;
      }
      return false;
    },
    async digestItems(user, period, limit) {
      const out: DigestItem[] = [];
      const iter = kv.list<DigestItem>({ prefix: keys.mailDigestItemPrefix(user, period) }, {
        limit,
      });
      for await (const entry of iter) out.push(entry.value);
      return out.sort((a, b) => a.at - b.at);
    },
    async completeDigest(entry, items) {
      if (entry.task.kind !== "digest") return false;
      const { user, period } = entry.task;
      const op = kv.atomic().check(checkOf(entry)).delete(taskKey(entry));
      for (const item of items) op.delete(keys.mailDigestItemKey(user, period, item.event));
      // Items that arrived after the listing, or beyond it, need a digest of their own.
      let left = false;
      const covered = new Set(items.map((i) => i.event));
      for await (
        const e of kv.list<DigestItem>({ prefix: keys.mailDigestItemPrefix(user, period) })
      ) {
        if (!covered.has(e.value.event)) {
          left = true;
          break;
        }
      }
      if (left) {
        const now = Date.now();
        op.set(keys.mailTaskKey(now, entry.task.id), { ...entry.task, attempts: 0 })
          .set(keys.mailDigestDueKey(user, period), now);
      } else {
        op.delete(keys.mailDigestDueKey(user, period));
      }
      return (await op.commit()).ok;
    },
    async deadLetter(entry, reason, now) {
      const op = kv.atomic().check(checkOf(entry)).delete(taskKey(entry))
        .set(
          keys.mailDeadKey(now, entry.task.id),
          {
            task: entry.task,
            reason,
            attempts: entry.task.attempts,
            at: now,
          } satisfies MailDeadLetter,
        );
      if (entry.task.kind === "digest") {
        op.delete(keys.mailDigestDueKey(entry.task.user, entry.task.period));
        const { user, period } = entry.task;
        for await (
          const e of kv.list({ prefix: keys.mailDigestItemPrefix(user, period) }, { limit: 500 })
        ) {
          op.delete(e.key);
        }
      }
      return (await op.commit()).ok;
    },
    async listDeadLetters(limit) {
      const out: MailDeadLetter[] = [];
      const iter = kv.list<MailDeadLetter>({ prefix: keys.mailDeadPrefix() }, {
        limit,
        reverse: true,
      });
      for await (const entry of iter) out.push(entry.value);
      return out;
    },
    async ofUser(user): Promise<UserMail> {
      const { tasks, dead, digest } = await entriesOf(user);
      return {
        tasks: tasks.map(toQueued),
        digestItems: digest.map((e) => ({
          ...e.value,
          period: e.key[2] as UserDigestItem["period"],
        })),
        deadLetters: dead.map((e) => e.value),
      };
    },
    async eraseUser(user) {
      const { tasks, dead, digest } = await entriesOf(user);
      const schedules: Deno.KvKey[] = [];
      for await (const e of kv.list({ prefix: keys.mailDigestDuePrefix(user) })) {
        schedules.push(e.key);
      }
      await deleteAll(kv, [...[...tasks, ...dead, ...digest].map((e) => e.key), ...schedules]);
      return { tasks: tasks.length, digestItems: digest.length, deadLetters: dead.length };
    },
  };
}
