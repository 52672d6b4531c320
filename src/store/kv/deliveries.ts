/**
 * Per-target delivery state on Deno KV: delivered marks, pending acks, acks and dead
 * letters. Every state change moves the event's counters in the same commit.
 */

import * as keys from "../keys.ts";
import { itemSeq } from "./_items.ts";
import { chunk, getManyEntries } from "../kv_reads.ts";
import type {
  DeadLetter,
  DeliveredEntry,
  DeliveryStore,
  PendingAck,
  StreamItem,
  TargetRecord,
} from "../store.ts";
import { MAX_RETRIES } from "./_commit.ts";
import { GET_MANY, MAX_MUTATIONS } from "./limits.ts";

/** Targets recorded as delivered per commit: one check each, under KV's 100 checks. */
const RECORD_BATCH = 90;
/** Tries of one batch of pending acks before it is left as it was. */
const SAVE_PENDING_TRIES = 5;

/** Creates the delivery state port on an open Deno KV handle. */
export function createKvDeliveryStore(kv: Deno.Kv): DeliveryStore {
  async function listPending(user: string): Promise<PendingAck[]> {
    const out: PendingAck[] = [];
    for await (const e of kv.list<PendingAck>({ prefix: keys.pendingPrefix(user) })) {
      out.push(e.value);
    }
    return out;
  }

  async function savePending(user: string, pending: PendingAck[]) {
    for (const part of chunk(pending, GET_MANY)) {
      for (let attempt = 0; attempt < SAVE_PENDING_TRIES; attempt++) {
        const current = await kv.getMany<PendingAck[]>(
          part.map((p) => keys.pendingKey(user, p.seq)),
        );
        const op = kv.atomic();
        part.forEach((p, i) => {
          // An item acked in the meantime stays acked: only existing entries are updated.
          if (current[i].value === null) return;
          op.check(current[i]).set(keys.pendingKey(user, p.seq), p);
        });
        if ((await op.commit()).ok) break;
      }
    }
  }

  /** Moves one target to a new state, keeping the counters in step; retries on races. */
  async function transition(
    id: string,
    user: string,
    to: "delivered" | "acked" | "failed",
    now: number,
    extra: (op: Deno.AtomicOperation) => void = () => {},
  ): Promise<boolean> {
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const entry = await kv.get<TargetRecord>(keys.targetKey(id, user));
      const target = entry.value;
      if (!target) return false;
      const from = target.state;
      if (from === to || from === "acked" || from === "failed") return true;
      if (to === "delivered" && from !== "pending") return true;
      const op = kv.atomic().check(entry).set(keys.targetKey(id, user), {
        ...target,
        state: to,
        at: now,
      });
      if (from === "pending") op.sum(keys.counterKey(id, "delivered"), 1n);
      if (to !== "delivered") op.sum(keys.counterKey(id, to), 1n);
      extra(op);
      if ((await op.commit()).ok) return true;
    }
    throw new Error(`Cannot update the delivery state of event "${id}"`);
  }

  async function ack(user: string, id: string, now: number): Promise<boolean> {
    const seq = await itemSeq(kv, user, id);
    if (seq === null) return false;
    // An expired item was never delivered nor listed, and is left for its dead letter: an
    // ack of it must not count it delivered and acked.
    const item = (await kv.get<StreamItem>(keys.streamKey(user, seq))).value;
    if (item?.exp !== undefined && item.exp <= now) return false;
    // Nothing waits on an item that needs no ack (a muted one was not even delivered):
    // its ack is taken, and counts nothing.
    if (item && !item.ack) return true;
    return await transition(id, user, "acked", now, (op) => op.delete(keys.pendingKey(user, seq)));
  }

  async function deadLetter(user: string, pending: PendingAck[], reason: string, now: number) {
    for (const p of pending) {
      await transition(p.id, user, "failed", now, (op) => {
        op.delete(keys.pendingKey(user, p.seq));
        op.set(
          keys.deadLetterKey(now, user, p.seq),
          {
            id: p.id,
            user,
            seq: p.seq,
            attempts: p.attempts,
            reason,
            at: now,
          } satisfies DeadLetter,
        );
      });
    }
  }

  async function listDeadLetters(opts: { limit: number }): Promise<DeadLetter[]> {
    const out: DeadLetter[] = [];
    const iter = kv.list<DeadLetter>({ prefix: keys.deadLetterPrefix() }, {
      limit: opts.limit,
      reverse: true,
    });
    for await (const e of iter) out.push(e.value);
    return out;
  }

  /** Adds ephemeral deliveries to their events' counters (users by event): few keys. */
  async function countDelivered(users: Map<string, Set<string>>) {
    for (const part of chunk([...users], MAX_MUTATIONS)) {
      const op = kv.atomic();
      for (const [id, of] of part) op.sum(keys.counterKey(id, "delivered"), BigInt(of.size));
      await op.commit();
    }
  }

  async function markDelivered(all: DeliveredEntry[], now: number) {
    // A user counts once per event in a batch. Ephemeral deliveries are most of a large
    // fan-out: they are grouped by event, without a key built per delivery.
    const ephemeral = new Map<string, Set<string>>();
    const durable = new Map<string, DeliveredEntry>();
    for (const e of all) {
      if (!e.ephemeral) {
        durable.set(`${e.id}\u0000${e.user}`, e);
        continue;
      }
      const users = ephemeral.get(e.id);
      if (users) users.add(e.user);
      else ephemeral.set(e.id, new Set([e.user]));
    }
    await countDelivered(ephemeral);
    // Up to ninety targets per commit (one check each, under KV's 100): a 10,000-user
    // fan-out is recorded in ~110 commits, not 10,000, so recording competes less with the
    // fan-out's own commits. A record the fan-out said it wrote is checked against that
    // commit's versionstamp and not read; the others, and the batches whose check failed
    // (acked or erased meanwhile), are read.
    const known: DeliveredEntry[] = [];
    const unread: DeliveredEntry[] = [];
    for (const e of durable.values()) (e.written ? known : unread).push(e);
    for (const part of chunk(known, RECORD_BATCH)) {
      const op = kv.atomic();
      const counts = new Map<string, bigint>();
      for (const { id, user, written } of part) {
        const key = keys.targetKey(id, user);
        op.check({ key, versionstamp: written!.version }).set(
          key,
          {
            seq: written!.seq,
            state: "delivered",
            at: now,
          } satisfies TargetRecord,
        );
        counts.set(id, (counts.get(id) ?? 0n) + 1n);
      }
      for (const [id, n] of counts) op.sum(keys.counterKey(id, "delivered"), n);
      if (!(await op.commit()).ok) unread.push(...part);
    }
    // Read with parallel getMany calls; a commit that loses a race falls back to the
    // one-by-one transition, which re-reads and retries.
    for (const part of chunk(unread, RECORD_BATCH)) {
      const current = await getManyEntries<TargetRecord>(
        kv,
        part.map((e) => keys.targetKey(e.id, e.user)),
      );
      const op = kv.atomic();
      const counts = new Map<string, bigint>();
      current.forEach((entry, i) => {
        if (entry.value?.state !== "pending") return;
        op.check(entry).set(entry.key, { ...entry.value, state: "delivered", at: now });
        counts.set(part[i].id, (counts.get(part[i].id) ?? 0n) + 1n);
      });
      if (counts.size === 0) continue;
      for (const [id, n] of counts) op.sum(keys.counterKey(id, "delivered"), n);
      if ((await op.commit()).ok) continue;
      await Promise.all(part.map((e) => transition(e.id, e.user, "delivered", now)));
    }
  }

  return { listPending, savePending, ack, deadLetter, listDeadLetters, markDelivered };
}
