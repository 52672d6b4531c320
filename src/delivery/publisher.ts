/**
 * Publishing: an envelope becomes a durable event, then reaches its targets.
 *
 * A durable event (NOTIFICATION, MESSAGE, or anything that needs an ack) gets one stream
 * entry per target, written in batches. A small audience's are written before the
 * publish answers, then pushed to the targets online. A large audience's event is stored
 * with its job and, with it, the seqs its online targets take from their heads: those
 * targets get it from memory at once, and the job writes their entries at these seqs
 * afterwards (after a restart too); the others get it as its batches land.
 *
 * An ephemeral one (REALTIME or SYSTEM without ack) is stored once, as its record, and
 * goes from memory to the targets that have a live stream head: each takes a seq from
 * the head, and nothing is written per target. Targets without a head are offline and
 * would only find it expired when they come back.
 */

import type { AudienceResolver } from "../audience/audience.ts";
import { AppError } from "../errors.ts";
import { type Envelope, isDurable, toClientEnvelope, withoutTargets } from "../schemas/envelope.ts";
import { collapses, eventRecord, targetItem } from "../store/items.ts";
import type {
  DeliveryClaims,
  EventRecord,
  EventStore,
  FanoutBatch,
  FanoutPlanner,
  PublishOptions,
  PublishResult,
  SeqSource,
} from "../store/store.ts";
import { endWhenSettled, type SpanContext, type Tracing } from "../tracing.ts";
import type { StreamHeads } from "./stream_heads.ts";

/** How many unknown targets a publish result lists at most. */
export const MAX_UNKNOWN_LISTED = 100;

/**
 * Ephemeral events to at most this many live targets are sent right after their commit;
 * larger ones on the next turn of the event loop, after the publish is answered.
 */
export const SEND_NOW_TARGETS = 64;

/** An ephemeral event's targets are handed to live delivery this many at a time. */
export const EPHEMERAL_SLICE = 512;

/** How an envelope is published: its owner, and the trace it belongs to. */
export interface PublishCall extends PublishOptions {
  /** The caller's span (the HTTP request, the ingested change): `publish` is its child. */
  trace?: SpanContext;
}

/** The outcome of a publish. */
export interface Published {
  result: PublishResult;
  /** True when the id was known and the first result is returned. */
  replayed: boolean;
}

/** Publishes envelopes and finishes interrupted fan-outs. */
export interface Publisher {
  /**
   * Publishes `envelope`, recording `publishedBy` as its owner. A re-post of a known id
   * by the same owner is a replay; by another, a `conflict` error: the id is taken.
   */
  publish(envelope: Envelope, options?: PublishCall): Promise<Published>;
  /**
   * Finishes the fan-outs a previous process left unfinished (those of `ids` only, when
   * given), in the background; answers how many it looked at.
   */
  resumeUnfinished(ids?: string[]): Promise<number>;
  /** Resolves when every background fan-out has finished. */
  idle(): Promise<void>;
  /**
   * Settles once the fan-outs the last `resumeUnfinished()` (of every id) started whose
   * items may have been sent before they were written (seqs assigned at creation) are
   * done; none when they are (see `SessionDeps.resumed`).
   */
  resumed(): Promise<void> | undefined;
}

/** Dependencies of {@linkcode createPublisher}. */
export interface PublisherDeps {
  store: EventStore;
  audience: AudienceResolver;
  /**
   * Pushes a committed batch to the online targets; the envelope comes encoded once, and
   * `trace` is the batch's span when the event is traced.
   */
  deliverLive(
    batch: FanoutBatch,
    clientEnvelopeJson: string,
    envelope: Envelope,
    trace?: SpanContext,
  ): void;
  /**
   * Per envelope, how each batch of targets gets it (preferences: in-app or not, mail
   * or not); `undefined` for plain delivery.
   */
  plan?(envelope: Envelope): FanoutPlanner | undefined;
  /** Reports a background fan-out failure. */
  onError(id: string, error: unknown): void;
  /**
   * Told where a batch wrote the delivery record of an item that went out before it was
   * written (its delivery was recorded without it; see `DeliveryRecorder.written`).
   */
  onWritten?(id: string, user: string, written: { seq: number; version: string }): void;
  /**
   * Deliveries of items sent before they were written, which the job's batches take and
   * write as delivered with the items (see `DeliveryClaims`).
   */
  claims?: DeliveryClaims;
  /** Audiences up to this size are written before the publish answers. */
  syncFanoutLimit: number;
  /**
   * The live stream heads: where online targets take their seqs, and the order to visit
   * a large audience in (see `StreamHeads.order`).
   */
  seqs?: SeqSource & Partial<Pick<StreamHeads, "order" | "hold" | "stored" | "lost">>;
  /**
   * In cluster mode, the lease each fan-out job runs under (`fanout/<event id>`), so that
   * one node at a time runs it: `hold` answers `undefined` without running `work` when
   * another node holds it. Absent: jobs run without one.
   */
  jobLeases?: { hold<T>(id: string, work: () => Promise<T>): Promise<T | undefined> };
  /** Spans of `publish` and of each fan-out batch; none when traces are off. */
  tracing?: Tracing;
  now?: () => number;
}

/**
 * Refuses to replay an event that another service key published. Events recorded
 * without an owner (before owners were kept, or published by relais itself) replay for
 * anyone, as they always did.
 */
function assertSameOwner(event: EventRecord, publishedBy: string | undefined): void {
  if (event.publishedBy === undefined || event.publishedBy === publishedBy) return;
  throw new AppError(
    "conflict",
    `Cannot publish event "${event.id.slice(0, 100)}": the id is taken by another service`,
    { details: [{ path: "metadata.id", message: "already used by another service" }] },
  );
}

/** Creates the publisher. */
export function createPublisher(deps: PublisherDeps): Publisher {
  const now = deps.now ?? Date.now;
  const running = new Map<string, Promise<void>>();
  const { tracing } = deps;
  let resuming: Promise<void> | undefined;

  /** Hands a committed batch on, under a `fanout.batch` span when the event is traced. */
  function deliverLive(batch: FanoutBatch, json: string, envelope: Envelope, trace?: SpanContext) {
    if (!trace || !tracing) return deps.deliverLive(batch, json, envelope);
    const span = tracing.start("fanout.batch", trace, { "relais.items": batch.items.length });
    try {
      deps.deliverLive(batch, json, envelope, span.spanContext());
    } finally {
      span.end();
    }
  }

  /**
   * Seqs for the targets of a large durable audience that have a live head, taken now,
   * in the order events are accepted: stored with the event, they let those targets get
   * it before the job writes their entries. A head that cannot hand one out at once
   * (opening, or extending its range) is left to the job. None in cluster mode, for
   * items that replace older ones, or when heads cannot hold items.
   */
  function takeEarly(event: EventRecord, users: string[]) {
    const seqs = deps.seqs;
    if (!seqs?.hold || users.length <= deps.syncFanoutLimit || collapses(event)) return undefined;
    const early = new Map<string, number>();
    for (const user of seqs.order ? seqs.order(users) : users) {
      if (early.has(user)) continue;
      const seq = seqs.take(user);
      if (typeof seq === "number") early.set(user, seq);
      else seq?.then((s) => seqs.drop(user, s), () => {});
    }
    return early.size > 0 ? early : undefined;
  }

  /**
   * Hands the items of the targets assigned a seq at creation to their heads, before the
   * job writes them: each shown one is held until it is stored. Answers whether they went
   * out (a failed plan leaves them to the job's batches).
   */
  async function deliverEarly(
    event: EventRecord,
    early: ReadonlyMap<string, number>,
    live: { json: string; envelope: Envelope; plan?: FanoutPlanner; trace?: SpanContext },
  ): Promise<boolean> {
    const heads = deps.seqs!;
    const users = [...early.keys()];
    let plans;
    try {
      plans = live.plan ? await live.plan(users, event) : undefined;
    } catch (error) {
      deps.onError(event.id, error);
      return false;
    }
    const at = now();
    const items: FanoutBatch["items"] = users.map((user, i) => {
      const seq = early.get(user)!;
      const plan = plans?.[i];
      const { item, pending } = targetItem(event, { seq, now: at, ...(plan ? { plan } : {}) });
      if (!item.quiet) heads.hold!(user, item, live.json);
      return { user, item, ...(pending ? { pending } : {}) };
    });
    deliverLive({ event, items, ahead: true }, live.json, live.envelope, live.trace);
    return true;
  }

  /**
   * A committed batch, its items that went out before they were written marked `sent`:
   * they are stored now, and released (where their delivery records landed is told).
   */
  function unheld(batch: FanoutBatch): FanoutBatch {
    const heads = deps.seqs!;
    const { version } = batch;
    let sent = false;
    const items = batch.items.map((entry) => {
      const { user, item, pending } = entry;
      if (!heads.stored!(user, item.seq)) return entry;
      sent = true;
      // Read back, as live delivery does, when an ack may have moved it already; a claimed
      // delivery was written with the item.
      if (version && item.durable && !pending && !entry.delivered) {
        deps.onWritten?.(batch.event.id, user, { seq: item.seq, version });
      }
      return { ...entry, sent: true as const };
    });
    return sent ? { ...batch, items } : batch;
  }

  async function run(
    id: string,
    known?: Envelope,
    trace?: SpanContext,
    early?: { event: EventRecord; seqs: ReadonlyMap<string, number> },
  ) {
    const envelope = known ?? await deps.store.getEnvelope(id);
    if (!envelope) throw new Error(`Cannot fan out event "${id}": its body is missing`);
    const json = JSON.stringify(toClientEnvelope(envelope));
    const plan = deps.plan?.(envelope);
    const heads = deps.seqs;
    // On the next turn of the event loop: the publish is answered before the sends.
    if (early) await new Promise((resolve) => setTimeout(resolve, 0));
    const ahead = early &&
      await deliverEarly(early.event, early.seqs, {
        json,
        envelope,
        ...(plan ? { plan } : {}),
        ...(trace ? { trace } : {}),
      });
    try {
      await deps.store.runFanout(
        id,
        // Only a run that sent items ahead has any held: the others' batches go as they are.
        (batch) => deliverLive(ahead ? unheld(batch) : batch, json, envelope, trace),
        {
          ...(plan ? { plan } : {}),
          ...(heads ? { seqs: heads } : {}),
          ...(ahead && deps.claims ? { claims: deps.claims } : {}),
        },
      );
    } finally {
      // What went out and is not stored yet will be written by the next start's run.
      if (ahead) { for (const [user, seq] of early.seqs) heads!.lost!(user, seq); }
    }
  }

  /**
   * Hands an ephemeral event to every target with a live head, from memory. The seqs are
   * taken at once, in the order events are accepted. The items of a small audience go out
   * at once (a microtask after the commit: a few sends hold the answer up less than a turn
   * of the event loop holds them up); a larger one's on the next turn, once the publish has
   * been answered. A target whose head must first extend its range gets it once the range
   * is reserved. A large audience is visited in the order of the heads (see
   * `StreamHeads.order`).
   */
  function fanOutEphemeral(
    event: EventRecord,
    envelope: Envelope,
    users: string[],
    trace?: SpanContext,
  ) {
    const seqs = deps.seqs;
    if (!seqs) return;
    const json = JSON.stringify(toClientEnvelope(envelope));
    const at = now();
    // The seqs are taken now; each target's item is made when its slice goes out.
    const targets: string[] = [];
    const taken: number[] = [];
    for (const user of seqs.order ? seqs.order(users) : users) {
      const seq = seqs.take(user);
      if (seq === undefined) continue;
      if (typeof seq === "number") {
        targets.push(user);
        taken.push(seq);
        continue;
      }
      seq.then(
        (s) =>
          deliverLive(
            { event, items: [{ user, item: targetItem(event, { seq: s, now: at }).item }] },
            json,
            envelope,
            trace,
          ),
        // The head ended meanwhile: the user is gone, and so is their window.
        () => {},
      );
    }
    if (targets.length === 0) return;
    const later = targets.length <= SEND_NOW_TARGETS
      ? queueMicrotask
      : (send: () => void) => setTimeout(send, 0);
    // Tracked like a fan-out job, so that `idle()` waits for it.
    const sent = new Promise<void>((resolve) =>
      later(() => {
        try {
          // In slices: a large audience's items die young instead of outliving collections.
          for (let from = 0; from < targets.length; from += EPHEMERAL_SLICE) {
            const items: FanoutBatch["items"] = [];
            const to = Math.min(from + EPHEMERAL_SLICE, targets.length);
            for (let i = from; i < to; i++) {
              items.push({
                user: targets[i],
                item: targetItem(event, { seq: taken[i], now: at }).item,
              });
            }
            deliverLive({ event, items }, json, envelope, trace);
          }
        } catch (error) {
          deps.onError(event.id, error);
        } finally {
          resolve();
        }
      })
    ).finally(() => running.delete(event.id));
    running.set(event.id, sent);
  }

  function fanOut(
    id: string,
    envelope?: Envelope,
    trace?: SpanContext,
    early?: { event: EventRecord; seqs: ReadonlyMap<string, number> },
  ): Promise<void> {
    const current = running.get(id);
    if (current) return current;
    const work = () => run(id, envelope, trace, early);
    const job = (deps.jobLeases ? deps.jobLeases.hold(id, work).then(() => {}) : work())
      .finally(() => running.delete(id));
    running.set(id, job);
    return job;
  }

  const publisher = {
    /** Publishes; `trace` is the `publish` span when the event is traced. */
    async publish(
      received: Envelope,
      options: PublishCall = {},
      trace?: SpanContext,
    ): Promise<Published> {
      const { publishedBy } = options;
      const { users, unknown } = await deps.audience.resolve(received.routing.audience);
      // Resolved: the event is stored, cached and handed on without its list of targets.
      const envelope = withoutTargets(received);
      const result: PublishResult = {
        id: envelope.metadata.id,
        accepted_at: new Date(now()).toISOString(),
        targeted: users.length,
        // The list is kept in the event's record, which KV caps at 64 KiB: a long list is
        // cut, and `unknown_count` says how long it was.
        unknown_targets: unknown.slice(0, MAX_UNKNOWN_LISTED),
        ...(unknown.length > MAX_UNKNOWN_LISTED ? { unknown_count: unknown.length } : {}),
      };
      if (deps.seqs && !isDurable(envelope)) {
        const { created, event } = await deps.store.createEvent(
          envelope,
          [],
          result,
          publishedBy === undefined ? {} : { publishedBy },
        );
        if (!created) {
          assertSameOwner(event, publishedBy);
          return { result: event.result, replayed: true };
        }
        fanOutEphemeral(event, envelope, users, trace);
        return { result, replayed: false };
      }
      if (users.length > 0 && users.length <= deps.syncFanoutLimit) {
        // Small audiences: the event and every stream entry in one commit, no job.
        const plan = deps.plan?.(envelope);
        const atomic = await deps.store.publishAtomic(
          envelope,
          users,
          result,
          {
            ...(plan ? { plan } : {}),
            ...(publishedBy === undefined ? {} : { publishedBy }),
            ...(deps.seqs ? { seqs: deps.seqs } : {}),
          },
        );
        if (atomic?.batch) {
          deliverLive(atomic.batch, JSON.stringify(toClientEnvelope(envelope)), envelope, trace);
          return { result, replayed: false };
        }
        if (atomic) {
          assertSameOwner(atomic.event, publishedBy);
          if (atomic.event.fanningOut) await fanOut(atomic.event.id);
          return { result: atomic.event.result, replayed: true };
        }
      }
      const early = takeEarly(
        eventRecord(envelope, result, { chunks: 1, fanningOut: true, publishedBy }),
        users,
      );
      let created: boolean, event: EventRecord;
      try {
        ({ created, event } = await deps.store.createEvent(envelope, users, result, {
          ...(publishedBy === undefined ? {} : { publishedBy }),
          ...(early ? { assigned: early } : {}),
        }));
      } catch (error) {
        for (const [user, seq] of early ?? []) deps.seqs!.drop(user, seq);
        throw error;
      }
      if (!created) {
        for (const [user, seq] of early ?? []) deps.seqs!.drop(user, seq);
        assertSameOwner(event, publishedBy);
        // A re-post while the first fan-out is still running waits for the same durability.
        if (event.fanningOut && users.length <= deps.syncFanoutLimit) await fanOut(event.id);
        return { result: event.result, replayed: true };
      }
      if (users.length <= deps.syncFanoutLimit) {
        await fanOut(event.id, envelope, trace);
      } else {
        fanOut(event.id, envelope, trace, early && { event, seqs: early })
          .catch((error) => deps.onError(event.id, error));
      }
      return { result, replayed: false };
    },
    async resumeUnfinished(only?: string[]) {
      const ids = only ?? await deps.store.unfinishedFanouts();
      // Those whose items a previous process may have sent before writing them.
      const sent = only || ids.length === 0
        ? new Set<string>()
        : new Set(await deps.store.unfinishedFanouts({ assigned: true }));
      const waits: Promise<void>[] = [];
      for (const id of ids) {
        const run = fanOut(id).catch((error) => deps.onError(id, error));
        if (sent.has(id)) waits.push(run);
      }
      if (waits.length > 0) {
        const all = Promise.all(waits).then(() => {
          if (resuming === all) resuming = undefined;
        });
        resuming = all;
      }
      return ids.length;
    },
    resumed: () => resuming,
    async idle() {
      while (running.size > 0) await Promise.allSettled([...running.values()]);
    },
  };
  if (!tracing) return publisher;

  /** Publishes under a `publish` span, a child of the caller's. */
  function traced(envelope: Envelope, options: PublishCall, tracing: Tracing) {
    const span = tracing.start("publish", options.trace, {
      "relais.event.id": envelope.metadata.id,
      "relais.event.type": envelope.metadata.type,
    });
    const published = publisher.publish(envelope, options, span.spanContext());
    published.then(({ result, replayed }) => {
      span.setAttribute("relais.targeted", result.targeted);
      span.setAttribute("relais.replayed", replayed);
    }, () => {});
    return endWhenSettled(span, published);
  }
  return { ...publisher, publish: (envelope, options = {}) => traced(envelope, options, tracing) };
}
