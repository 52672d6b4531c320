/** The Deno KV adapter of the push store. */

import { deleteAll, retryPause } from "../store/kv/_commit.ts";
import * as keys from "../store/keys.ts";
import { getManyEntries } from "../store/kv_reads.ts";
import type { PushStore, PushTask, QueuedPush, VapidKeys } from "./push_store.ts";
import type { PushSubscriptionRecord } from "./subscription.ts";

/** Tasks written per commit (two keys each, well under KV's mutation cap). */
const ADD_CHUNK = 200;

function toQueued(entry: Deno.KvEntry<PushTask>): QueuedPush {
  return { dueAt: entry.key[1] as number, task: entry.value, version: entry.versionstamp };
}

/** Options of {@linkcode createKvPushStore}. */
export interface KvPushStoreOptions {
  /**
   * In cluster mode, adds to each claim's commit the check that this node still holds the
   * push runner's lease, so that a runner that lost it claims (and sends) nothing more.
   */
  fence?(op: Deno.AtomicOperation): Deno.AtomicOperation;
}

/** Creates the push store on an open Deno KV handle. */
export function createKvPushStore(kv: Deno.Kv, options: KvPushStoreOptions = {}): PushStore {
  const taskKeyOf = (entry: QueuedPush) => keys.pushTaskKey(entry.dueAt, entry.task.id);
  const checkOf = (entry: QueuedPush) => ({ key: taskKeyOf(entry), versionstamp: entry.version });

  async function subscriptionsOf(user: string) {
    const out: Deno.KvEntry<PushSubscriptionRecord>[] = [];
    const iter = kv.list<PushSubscriptionRecord>({ prefix: keys.pushSubscriptionPrefix(user) });
    for await (const entry of iter) out.push(entry);
    return out.sort((a, b) => a.value.createdAt - b.value.createdAt);
  }

  async function tasksOf(user: string) {
    const index: Deno.KvEntry<number>[] = [];
    for await (const e of kv.list<number>({ prefix: keys.pushUserTaskPrefix(user) })) index.push(e);
    const tasks: QueuedPush[] = [];
    for (const e of index) {
      const task = await kv.get<PushTask>(keys.pushTaskKey(e.value, e.key[2] as string));
      if (task.value) tasks.push(toQueued(task as Deno.KvEntry<PushTask>));
    }
    return { index, tasks: tasks.sort((a, b) => a.dueAt - b.dueAt) };
  }

  return {
    async putSubscription(user, subscription, max) {
      const indexKey = keys.pushEndpointKey(subscription.id);
      for (let attempt = 0; attempt < 10; attempt++) {
        const [current, holder] = await Promise.all([
          subscriptionsOf(user),
          kv.get<string>(indexKey),
        ]);
        const others = current.filter((e) => e.value.id !== subscription.id);
        // The oldest go first, so that the newest `max` are kept.
        const dropped = others.slice(0, Math.max(0, others.length - (max - 1)));
        const droppedIndex = await getManyEntries<string>(
          kv,
          dropped.map((e) => keys.pushEndpointKey(e.value.id)),
        );
        const op = kv.atomic().check(holder);
        for (const e of current) op.check(e);
        for (const e of dropped) op.delete(e.key);
        for (const e of droppedIndex) {
          if (e.value === user) op.check(e).delete(e.key);
        }
        // A browser another user registered before (a shared device): it leaves them in this
        // commit, so that their notifications never reach whoever uses it now.
        if (holder.value !== null && holder.value !== user) {
          const previous = holder.value;
          const [theirs, marker] = await Promise.all([
            subscriptionsOf(previous),
            kv.get<boolean>(keys.pushUserKey(previous)),
          ]);
          const moved = theirs.find((e) => e.value.id === subscription.id);
          // Checked against their marker too: a subscription of theirs added meanwhile sets it.
          op.check(marker);
          for (const e of theirs) op.check(e);
          if (moved) op.delete(moved.key);
          if (moved && theirs.length === 1) op.delete(marker.key);
        }
        op.set(keys.pushSubscriptionKey(user, subscription.id), subscription);
        op.set(keys.pushUserKey(user), true);
        op.set(indexKey, user);
        if ((await op.commit()).ok) return;
        // Registrations racing for one endpoint spread out rather than racing again.
        await retryPause(attempt);
      }
      throw new Error(`Cannot save a push subscription of "${user}": too many concurrent changes`);
    },
    async removeSubscription(user, id) {
      for (let attempt = 0; attempt < 10; attempt++) {
        const [current, holder] = await Promise.all([
          subscriptionsOf(user),
          kv.get<string>(keys.pushEndpointKey(id)),
        ]);
        const entry = current.find((e) => e.value.id === id);
        if (!entry) return false;
        // Checked against every subscription listed: the last one out takes the marker.
        const op = kv.atomic().check(holder);
        for (const e of current) op.check(e);
        op.delete(entry.key);
        if (current.length === 1) op.delete(keys.pushUserKey(user));
        // The index stays when it names another user: the endpoint is theirs now.
        if (holder.value === user) op.delete(holder.key);
        if ((await op.commit()).ok) return true;
      }
      throw new Error(
        `Cannot remove a push subscription of "${user}": too many concurrent changes`,
      );
    },
    async withSubscriptions(users) {
      const markers = await getManyEntries<boolean>(kv, users.map((u) => keys.pushUserKey(u)));
      return new Set(users.filter((_, i) => markers[i].value !== null));
    },
    async getSubscription(user, id) {
      return (await kv.get<PushSubscriptionRecord>(keys.pushSubscriptionKey(user, id))).value ??
        undefined;
    },
    async endpointHolder(id) {
      return (await kv.get<string>(keys.pushEndpointKey(id))).value ?? undefined;
    },
    async listSubscriptions(user) {
      return (await subscriptionsOf(user)).map((e) => e.value);
    },
    async add(dueAt, tasks) {
      for (let i = 0; i < tasks.length; i += ADD_CHUNK) {
        const op = kv.atomic();
        for (const task of tasks.slice(i, i + ADD_CHUNK)) {
          op.set(keys.pushTaskKey(dueAt, task.id), task)
            .set(keys.pushUserTaskKey(task.user, task.id), dueAt);
        }
        const result = await op.commit();
        if (!result.ok) throw new Error("Cannot queue pushes: the commit failed");
      }
    },
    async due(now, limit) {
      const out: QueuedPush[] = [];
      const iter = kv.list<PushTask>({
        start: keys.pushTaskKey(0, ""),
        end: keys.pushTaskKey(now + 1, ""),
      }, { limit });
      for await (const entry of iter) out.push(toQueued(entry));
      return out;
    },
    async nextDueAt() {
      for await (
        const entry of kv.list<PushTask>({ prefix: keys.pushTaskPrefix() }, { limit: 1 })
      ) {
        return entry.key[1] as number;
      }
      return undefined;
    },
    async depth(max = 100_000) {
      let n = 0;
      for await (const _ of kv.list({ prefix: keys.pushTaskPrefix() }, { limit: max })) n++;
      return n;
    },
    async claim(entry, until) {
      const { task } = entry;
      const op = kv.atomic().check(checkOf(entry)).delete(taskKeyOf(entry))
        .set(keys.pushTaskKey(until, task.id), task)
        .set(keys.pushUserTaskKey(task.user, task.id), until);
      const res = await (options.fence ? options.fence(op) : op).commit();
      return res.ok ? { dueAt: until, task, version: res.versionstamp } : undefined;
    },
    async complete(entry) {
      const op = kv.atomic().check(checkOf(entry)).delete(taskKeyOf(entry))
        .delete(keys.pushUserTaskKey(entry.task.user, entry.task.id));
      return (await op.commit()).ok;
    },
    async reschedule(entry, dueAt, task) {
      const op = kv.atomic().check(checkOf(entry)).delete(taskKeyOf(entry))
        .set(keys.pushTaskKey(dueAt, task.id), task)
        .set(keys.pushUserTaskKey(task.user, task.id), dueAt);
      return (await op.commit()).ok;
    },
    async getVapidKeys() {
      return (await kv.get<VapidKeys>(keys.pushVapidKey())).value ?? undefined;
    },
    async saveVapidKeys(vapid) {
      const saved = await kv.atomic().check({ key: keys.pushVapidKey(), versionstamp: null })
        .set(keys.pushVapidKey(), vapid).commit();
      if (saved.ok) return vapid;
      const current = await kv.get<VapidKeys>(keys.pushVapidKey());
      return current.value ?? vapid;
    },
    async ofUser(user) {
      const [subscriptions, { tasks }] = await Promise.all([subscriptionsOf(user), tasksOf(user)]);
      return { subscriptions: subscriptions.map((e) => e.value), tasks };
    },
    async eraseUser(user) {
      const [subscriptions, { index, tasks }] = await Promise.all([
        subscriptionsOf(user),
        tasksOf(user),
      ]);
      const holders = await getManyEntries<string>(
        kv,
        subscriptions.map((e) => keys.pushEndpointKey(e.value.id)),
      );
      // The index entries first: an erasure cut short leaves subscriptions it finds again,
      // never an entry naming the user that nothing leads to. Each goes unless another user
      // registered its endpoint meanwhile (the failed check): then it is theirs.
      for (const holder of holders) {
        if (holder.value === user) await kv.atomic().check(holder).delete(holder.key).commit();
      }
      await deleteAll(kv, [
        keys.pushUserKey(user),
        ...subscriptions.map((e) => e.key),
        ...index.map((e) => e.key),
        ...tasks.map((t) => taskKeyOf(t)),
      ]);
      return { subscriptions: subscriptions.length, tasks: tasks.length };
    },
  };
}
