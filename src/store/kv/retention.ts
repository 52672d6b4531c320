/**
 * Retention on Deno KV: removes what is older than its kind's retention, in bounded steps.
 *
 * Events are found by scanning their records (ids are not in time order), at most a few
 * times `limit` per step, resumed from the last id handled. A durable event goes with
 * every key that names it, target by target, a few dozen targets per commit; its record
 * goes last, so a step cut short (or a crash) leaves it to be found again. Dead letters
 * and the audit log are keyed by time: a range from the start up to the cut.
 */

import * as keys from "../keys.ts";
import { getManyEntries } from "../kv_reads.ts";
import type {
  EventRecord,
  RetentionKind,
  RetentionStore,
  SweepOptions,
  Swept,
  TargetRecord,
} from "../store.ts";
import { MAX_RETRIES, retryPause } from "./_commit.ts";
import type { CollapseMark } from "./_items.ts";
import { MAX_MUTATIONS } from "./limits.ts";

/**
 * Targets removed per commit: up to six deletions each (item, delivery record, unread
 * mark, pending ack, legacy id index, collapse mark) and one check for a collapse mark.
 */
const TARGETS_PER_COMMIT = 40;
/** Event records of ephemeral events, or time-keyed entries, removed per commit. */
const RECORDS_PER_COMMIT = 100;
/** Event records a step looks at, per record it may remove. */
const SCAN_FACTOR = 4;

/** Creates the retention port on an open Deno KV handle. */
export function createKvRetentionStore(kv: Deno.Kv): RetentionStore {
  /** The keys of an event's record that go last: the record, its body, its counters. */
  const recordKeys = (event: EventRecord): Deno.KvKey[] => [
    ...Array.from({ length: event.chunks }, (_, i) => keys.eventBodyKey(event.id, i)),
    keys.counterKey(event.id, "delivered"),
    keys.counterKey(event.id, "acked"),
    keys.counterKey(event.id, "failed"),
  ];

  /**
   * Removes up to `budget` targets' items of a durable event (each with its delivery
   * record), then, once none is left, the event itself. Answers the targets removed and
   * whether the event is gone.
   */
  async function dropEvent(
    entry: Deno.KvEntry<EventRecord>,
    budget: number,
  ): Promise<{ removed: number; done: boolean }> {
    const event = entry.value;
    let removed = 0;
    while (removed < budget) {
      const targets: Deno.KvEntry<TargetRecord>[] = [];
      const limit = Math.min(TARGETS_PER_COMMIT, budget - removed);
      for await (
        const t of kv.list<TargetRecord>({ prefix: keys.targetPrefix(event.id) }, { limit })
      ) {
        targets.push(t);
      }
      if (targets.length === 0) {
        const op = kv.atomic().check(entry).delete(entry.key);
        for (const key of recordKeys(event)) op.delete(key);
        // A changed record (a racing publish of the same id cannot change it; a fan-out
        // could, but unfinished ones are skipped) is looked at again next round.
        return { removed, done: (await op.commit()).ok };
      }
      await dropTargets(event, targets);
      removed += targets.length;
    }
    return { removed, done: false };
  }

  /** Removes the items of `targets` and every key naming them. */
  async function dropTargets(
    event: EventRecord,
    targets: Deno.KvEntry<TargetRecord>[],
  ): Promise<void> {
    const { id, collapseKey } = event;
    const users = targets.map((t) => t.key[2] as string);
    for (let attempt = 0;; attempt++) {
      const [items, marks] = await Promise.all([
        getManyEntries<{ id: string }>(
          kv,
          targets.map((t, i) => keys.streamKey(users[i], t.value.seq)),
        ),
        collapseKey === undefined
          ? Promise.resolve([])
          : getManyEntries<CollapseMark>(kv, users.map((u) => keys.collapseKey(u, collapseKey))),
      ]);
      const op = kv.atomic();
      targets.forEach((t, i) => {
        const user = users[i];
        const { seq } = t.value;
        op.delete(t.key);
        // The seq of another event's item (never expected) is not this event's to remove.
        if (items[i].value?.id === id) op.delete(items[i].key);
        op.delete(keys.unreadKey(user, seq));
        op.delete(keys.pendingKey(user, seq));
        op.delete(keys.byIdKey(user, id));
        // The mark goes only while it names this item; checked, so that a publish that
        // just replaced this item (and moved the mark) is not undone, nor one that is
        // about to replace it left pointing at nothing.
        const mark = marks[i];
        if (mark?.value?.seq === seq) op.check(mark).delete(mark.key);
      });
      if ((await op.commit()).ok) return;
      if (attempt >= MAX_RETRIES) {
        throw new Error(`Cannot sweep the items of event "${id}": keeps conflicting`);
      }
      await retryPause(attempt);
    }
  }

  /** One step over the event records: durable ones (`items`) or ephemeral ones (`events`). */
  async function sweepEvents(
    durable: boolean,
    before: number,
    options: SweepOptions,
  ): Promise<Swept> {
    const { limit, cursor } = options;
    const scanBudget = limit * SCAN_FACTOR;
    const selector = cursor === undefined
      ? { prefix: keys.eventPrefix() }
      : { prefix: keys.eventPrefix(), start: keys.eventKey(cursor) };
    let removed = 0;
    let scanned = 0;
    let last = cursor;
    // Ephemeral events go many per commit, as many as its mutations hold: a body may take
    // a few chunks (a long `within`, or the audience an earlier version kept in it).
    let batch: Deno.KvEntry<EventRecord>[] = [];
    let mutations = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      const op = kv.atomic();
      for (const e of batch) {
        op.check(e).delete(e.key);
        for (const key of recordKeys(e.value)) op.delete(key);
      }
      if ((await op.commit()).ok) removed += batch.length;
      batch = [];
      mutations = 0;
    };
    const iter = kv.list<EventRecord>(selector, { batchSize: Math.min(500, scanBudget + 1) });
    for await (const entry of iter) {
      const event = entry.value;
      if (event.id === cursor) continue;
      if (++scanned > scanBudget || removed + batch.length >= limit) {
        await flush();
        return { removed, more: true, ...(last === undefined ? {} : { cursor: last }) };
      }
      const old = event.acceptedAt < before && event.durable === durable && !event.fanningOut;
      if (old && !durable) {
        const cost = 1 + recordKeys(event).length;
        if (mutations + cost > MAX_MUTATIONS) await flush();
        batch.push(entry);
        mutations += cost;
        if (batch.length >= RECORDS_PER_COMMIT) await flush();
      } else if (old) {
        const dropped = await dropEvent(entry, limit - removed);
        removed += dropped.removed;
        // Cut short: the next step starts again from this event.
        if (!dropped.done) {
          return { removed, more: true, ...(last === undefined ? {} : { cursor: last }) };
        }
      }
      last = event.id;
    }
    await flush();
    return { removed, more: false };
  }

  /** One step over a time-keyed log: every entry under `prefix` keyed before `before`. */
  async function sweepLog(prefix: Deno.KvKey, before: number, limit: number) {
    const found: Deno.KvKey[] = [];
    const end = [...prefix, before];
    for await (const e of kv.list({ prefix, end }, { limit: limit + 1, batchSize: 200 })) {
      found.push(e.key);
    }
    const more = found.length > limit;
    const gone = found.slice(0, limit);
    for (let i = 0; i < gone.length; i += RECORDS_PER_COMMIT) {
      const op = kv.atomic();
      for (const key of gone.slice(i, i + RECORDS_PER_COMMIT)) op.delete(key);
      if (!(await op.commit()).ok) throw new Error("Cannot sweep expired log entries");
    }
    return { removed: gone.length, more };
  }

  async function sweep(kind: RetentionKind, before: number, options: SweepOptions) {
    if (!Number.isSafeInteger(options.limit) || options.limit < 1) {
      throw new RangeError(
        `Cannot sweep with limit "${options.limit}": expected a positive integer`,
      );
    }
    switch (kind) {
      case "items":
        return await sweepEvents(true, before, options);
      case "events":
        return await sweepEvents(false, before, options);
      case "dead_letters": {
        // Delivery dead letters first, then mail ones; what is removed is gone, so each
        // step starts again from the oldest left.
        const first = await sweepLog(keys.deadLetterPrefix(), before, options.limit);
        if (first.more) return first;
        const rest = await sweepLog(keys.mailDeadPrefix(), before, options.limit - first.removed);
        return { removed: first.removed + rest.removed, more: rest.more };
      }
      case "audit":
        return await sweepLog(keys.controlAuditPrefix(), before, options.limit);
    }
  }

  return { sweep };
}
