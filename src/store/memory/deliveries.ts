/**
 * Per-target delivery state in memory: delivered marks, pending acks, acks and dead
 * letters. Every state change moves the event's counters in the same step.
 */

import type { DeadLetter, DeliveredEntry, DeliveryStore, PendingAck } from "../store.ts";
import { copy, type MemoryState } from "./_state.ts";

/** A dead letter's place: time, then user, then seq, as the KV adapter orders them. */
const deadLetterOrder = (a: DeadLetter, b: DeadLetter) =>
  a.at - b.at || (a.user < b.user ? -1 : a.user > b.user ? 1 : 0) || a.seq - b.seq;

/** Creates the delivery state port over `state`. */
export function createMemoryDeliveryStore(state: MemoryState): DeliveryStore {
  /**
   * Moves one target to a new state, keeping the counters in step, and runs `then` when
   * it moved; false when the event has no such target.
   */
  function transition(
    id: string,
    user: string,
    change: { to: "delivered" | "acked" | "failed"; now: number },
    then: () => void = () => {},
  ): boolean {
    const event = state.events.get(id);
    const target = event?.targets.get(user);
    if (!event || !target) return false;
    const from = target.state;
    const { to } = change;
    if (from === to || from === "acked" || from === "failed") return true;
    if (to === "delivered" && from !== "pending") return true;
    event.targets.set(user, { ...target, state: to, at: change.now });
    if (from === "pending") event.counts.delivered++;
    if (to !== "delivered") event.counts[to]++;
    then();
    return true;
  }

  function ack(user: string, id: string, now: number): Promise<boolean> {
    const found = state.users.get(user);
    const seq = found?.byId.get(id);
    if (seq === undefined) return Promise.resolve(false);
    // An expired item was never delivered nor listed, and is left for its dead letter.
    const item = found!.items.get(seq);
    if (item?.exp !== undefined && item.exp <= now) return Promise.resolve(false);
    // Nothing waits on an item that needs no ack: its ack is taken, and counts nothing.
    if (item && !item.ack) return Promise.resolve(true);
    return Promise.resolve(
      transition(id, user, { to: "acked", now }, () => found!.pending.delete(seq)),
    );
  }

  function deadLetter(user: string, pending: PendingAck[], reason: string, now: number) {
    for (const p of pending) {
      transition(p.id, user, { to: "failed", now }, () => {
        state.users.get(user)?.pending.delete(p.seq);
        const letter = { id: p.id, user, seq: p.seq, attempts: p.attempts, reason, at: now };
        state.deadLetters.set(JSON.stringify([now, user, p.seq]), letter);
      });
    }
    return Promise.resolve();
  }

  function savePending(user: string, pending: PendingAck[]) {
    const current = state.users.get(user)?.pending;
    for (const p of pending) {
      // An item acked in the meantime stays acked: only existing entries are updated.
      if (current?.has(p.seq)) current.set(p.seq, copy(p));
    }
    return Promise.resolve();
  }

  function markDelivered(entries: DeliveredEntry[], now: number) {
    const seen = new Set<string>();
    for (const { id, user, ephemeral } of entries) {
      if (!ephemeral) {
        transition(id, user, { to: "delivered", now });
        continue;
      }
      // Counted once per batch, as the KV adapter does: there is no target record.
      const key = `${id}\u0000${user}`;
      const event = state.events.get(id);
      if (seen.has(key) || !event) continue;
      seen.add(key);
      event.counts.delivered++;
    }
    return Promise.resolve();
  }

  return {
    listPending: (user) =>
      Promise.resolve(copy([...state.users.get(user)?.pending.values() ?? []])),
    savePending,
    ack,
    deadLetter,
    listDeadLetters: ({ limit }) =>
      Promise.resolve(
        copy([...state.deadLetters.values()].sort(deadLetterOrder).reverse().slice(0, limit)),
      ),
    markDelivered,
  };
}
