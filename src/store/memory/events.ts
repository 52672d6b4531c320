/**
 * Published events in memory: the record and body, the one-step publish for audiences up
 * to a bound, the job fan-out in batches for larger ones, and the delivery status.
 */

import type { Envelope } from "../../schemas/envelope.ts";
import {
  claimDeliveries,
  dropSeqs,
  eventRecord,
  releaseClaims,
  takeSeqs,
  whileTaking,
} from "../items.ts";
import type {
  AtomicPublish,
  EventStatus,
  EventStore,
  FanoutBatch,
  FanoutPlanner,
  FanoutRunOptions,
  PublishOptions,
  PublishResult,
  SeqOptions,
  TargetPlan,
} from "../store.ts";
import { copy, type MemoryEvent, type MemoryState } from "./_state.ts";
import { addTargetItem } from "./fanout.ts";

/** Bounds of the work one step of the in-memory adapter does. */
export interface MemoryEventLimits {
  /** Most targets a one-step publish writes; larger audiences take the job path. */
  atomicTargets: number;
  /** Targets a fan-out job writes per batch, between which other work runs. */
  fanoutBatch: number;
}

/** Users listed in `pending_users` at most. */
const PENDING_LISTED = 100;

/** The record of a newly published event (its body is kept whole: one chunk). */
function newEvent(
  envelope: Envelope,
  result: PublishResult,
  options: { fanningOut: boolean; publishedBy: string | undefined },
): MemoryEvent {
  const record = eventRecord(envelope, result, { chunks: 1, ...options });
  return {
    record: copy(record),
    envelope: copy(envelope),
    targets: new Map(),
    counts: { delivered: 0, acked: 0, failed: 0 },
  };
}

/** Creates the event port over `state`. */
export function createMemoryEventStore(
  state: MemoryState,
  limits: MemoryEventLimits,
): EventStore {
  function createEvent(
    envelope: Envelope,
    targets: string[],
    result: PublishResult,
    options: PublishOptions & { assigned?: ReadonlyMap<string, number> } = {},
  ) {
    const known = state.events.get(envelope.metadata.id);
    if (known) return Promise.resolve({ created: false, event: copy(known.record) });
    const event = newEvent(envelope, result, {
      fanningOut: targets.length > 0,
      publishedBy: options.publishedBy,
    });
    if (targets.length > 0) {
      event.job = {
        targets: [...targets],
        offset: 0,
        ...(options.assigned?.size ? { assigned: new Map(options.assigned) } : {}),
      };
    }
    state.events.set(event.record.id, event);
    return Promise.resolve({ created: true, event: copy(event.record) });
  }

  async function publishAtomic(
    envelope: Envelope,
    targets: string[],
    result: PublishResult,
    options: PublishOptions & SeqOptions & { plan?: FanoutPlanner } = {},
  ): Promise<AtomicPublish | undefined> {
    if (targets.length === 0 || targets.length > limits.atomicTargets) return undefined;
    const event = newEvent(envelope, result, {
      fanningOut: false,
      publishedBy: options.publishedBy,
    });
    const { seqs: source, plan } = options;
    // Seqs taken from heads, by user: taken first, in the order publishes arrive, and
    // given back unless written.
    const taken = new Map<string, number>();
    try {
      const ready = takeSeqs(source, targets, taken);
      let plans: TargetPlan[] | undefined;
      if (plan) plans = await whileTaking(ready, () => plan(targets, copy(event.record)));
      else await ready;
      // From here to the return, no `await`: the id check and every write are one step.
      const known = state.events.get(event.record.id);
      if (known) return { created: false, event: copy(known.record) };
      state.events.set(event.record.id, event);
      const now = state.now();
      const items = targets.map((user, i) =>
        addTargetItem(state, event, {
          user,
          ...(plans?.[i] ? { plan: plans[i] } : {}),
          ...(taken.has(user) ? { seq: taken.get(user)! } : {}),
        }, now)
      );
      taken.clear();
      const record = copy(event.record);
      return { created: true, event: record, batch: { event: record, items } };
    } finally {
      dropSeqs(source, taken);
    }
  }

  async function runFanout(
    id: string,
    onBatch: (batch: FanoutBatch) => void,
    options: FanoutRunOptions = {},
  ) {
    const { seqs: source, plan, claims } = options;
    // Seqs taken from heads and not written yet, by user: kept while the batch waits,
    // and given back when the run ends without them.
    const taken = new Map<string, number>();
    // Deliveries claimed for the batch that waits (written with it, or given back).
    const claimed = new Set<string>();
    try {
      while (true) {
        const event = state.events.get(id);
        const job = event?.job;
        if (!event || !job) return;
        const at = job.offset;
        const users = job.targets.slice(at, at + limits.fanoutBatch);
        // The job moves forward only: seqs taken for a batch another runner wrote
        // meanwhile will not be written by this one.
        dropSeqs(source, taken, new Set(users));
        // Users assigned a seq at creation are written at it, and take none.
        const given = job.assigned;
        const ready = takeSeqs(source, given ? users.filter((u) => !given.has(u)) : users, taken);
        let plans: TargetPlan[] | undefined;
        // Between batches, other publishes and reads run, as they would between commits.
        if (plan) plans = await whileTaking(ready, () => plan(users, copy(event.record)));
        else await ready;
        // Another runner of the same job may have written this batch meanwhile.
        if (event.job !== job || job.offset !== at) continue;
        const now = state.now();
        claimDeliveries(claims, event.record, users, given, claimed);
        const items = users.map((user, i) =>
          addTargetItem(state, event, {
            user,
            ...(plans?.[i] ? { plan: plans[i] } : {}),
            ...(given?.has(user) || taken.has(user)
              ? { seq: given?.get(user) ?? taken.get(user)! }
              : {}),
            ...(claimed.has(user) ? { delivered: true as const } : {}),
          }, now)
        );
        for (const user of users) {
          taken.delete(user);
          claimed.delete(user);
        }
        job.offset = at + users.length;
        const done = job.offset >= job.targets.length;
        if (done) {
          delete event.job;
          event.record = { ...event.record, fanningOut: false };
        }
        onBatch({ event: copy(event.record), items });
        if (done) return;
      }
    } finally {
      dropSeqs(source, taken);
      releaseClaims(claims, id, claimed);
    }
  }

  function getStatus(id: string): Promise<EventStatus | undefined> {
    const event = state.events.get(id);
    if (!event) return Promise.resolve(undefined);
    const { record, counts } = event;
    const open: string[] = [];
    // Ephemeral events keep no per-target record: nobody is waited on.
    for (const [user, target] of event.targets) {
      const waiting = record.ackRequired
        ? target.state === "pending" || target.state === "delivered"
        : target.state === "pending";
      if (waiting) open.push(user);
    }
    const targeted = record.result.targeted;
    return Promise.resolve({
      id,
      type: record.type,
      accepted_at: record.result.accepted_at,
      ack_required: record.ackRequired,
      fan_out: record.fanningOut ? "running" : "done",
      targeted,
      // A replay can count an ephemeral delivery twice: never more than the targets.
      delivered: record.durable ? counts.delivered : Math.min(counts.delivered, targeted),
      acked: counts.acked,
      failed: counts.failed,
      acked_all: record.ackRequired && !record.fanningOut && counts.acked === targeted,
      // Sorted, as the KV adapter lists its target keys.
      pending_users: open.sort().slice(0, PENDING_LISTED),
      unknown_targets: [...record.result.unknown_targets],
      unknown_count: record.result.unknown_count ?? record.result.unknown_targets.length,
    });
  }

  return {
    createEvent,
    publishAtomic,
    runFanout,
    unfinishedFanouts: (options = {}) =>
      Promise.resolve(
        [...state.events.values()]
          .filter((e) => e.job && (!options.assigned || e.job.assigned))
          .map((e) => e.record.id),
      ),
    getEvent: (id) => Promise.resolve(copy(state.events.get(id)?.record)),
    getEnvelope: (id) => Promise.resolve(state.events.get(id)?.envelope),
    getStatus,
  };
}
