/**
 * Publishing: an envelope becomes a durable event plus one stream item per target,
 * then is pushed to the targets that are online.
 */

import type { AudienceResolver } from "../audience/audience.ts";
import { AppError } from "../errors.ts";
import { type Envelope, toClientEnvelope } from "../schemas/envelope.ts";
import type {
  EventRecord,
  EventStore,
  FanoutBatch,
  FanoutPlanner,
  PublishOptions,
  PublishResult,
} from "../store/store.ts";

/** How many unknown targets a publish result lists at most. */
export const MAX_UNKNOWN_LISTED = 100;

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
  publish(envelope: Envelope, options?: PublishOptions): Promise<Published>;
  /** Finishes the fan-outs a previous process left unfinished. */
  resumeUnfinished(): Promise<number>;
  /** Resolves when every background fan-out has finished. */
  idle(): Promise<void>;
}

/** Dependencies of {@linkcode createPublisher}. */
export interface PublisherDeps {
  store: EventStore;
  audience: AudienceResolver;
  /** Pushes a committed batch to the online targets; the envelope comes encoded once. */
  deliverLive(batch: FanoutBatch, clientEnvelopeJson: string, envelope: Envelope): void;
  /**
   * Per envelope, how each batch of targets gets it (preferences: in-app or not, mail
   * or not); `undefined` for plain delivery.
   */
  plan?(envelope: Envelope): FanoutPlanner | undefined;
  /** Reports a background fan-out failure. */
  onError(id: string, error: unknown): void;
  /** Audiences up to this size are written before the publish answers. */
  syncFanoutLimit: number;
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

  async function run(id: string, known?: Envelope) {
    const envelope = known ?? await deps.store.getEnvelope(id);
    if (!envelope) throw new Error(`Cannot fan out event "${id}": its body is missing`);
    const json = JSON.stringify(toClientEnvelope(envelope));
    const plan = deps.plan?.(envelope);
    await deps.store.runFanout(
      id,
      (batch) => deps.deliverLive(batch, json, envelope),
      plan ? { plan } : {},
    );
  }

  function fanOut(id: string, envelope?: Envelope): Promise<void> {
    const current = running.get(id);
    if (current) return current;
    const job = run(id, envelope).finally(() => running.delete(id));
    running.set(id, job);
    return job;
  }

  return {
    async publish(envelope, options = {}) {
      const { publishedBy } = options;
      const { users, unknown } = await deps.audience.resolve(envelope.routing.audience);
      const result: PublishResult = {
        id: envelope.metadata.id,
        accepted_at: new Date(now()).toISOString(),
        targeted: users.length,
        // The list is kept in the event's record, which KV caps at 64 KiB: a long list is
        // cut, and `unknown_count` says how long it was.
        unknown_targets: unknown.slice(0, MAX_UNKNOWN_LISTED),
        ...(unknown.length > MAX_UNKNOWN_LISTED ? { unknown_count: unknown.length } : {}),
      };
      if (users.length > 0 && users.length <= deps.syncFanoutLimit) {
        // Small audiences: the event and every stream entry in one commit, no job.
        const plan = deps.plan?.(envelope);
        const atomic = await deps.store.publishAtomic(
          envelope,
          users,
          result,
          { ...(plan ? { plan } : {}), ...(publishedBy === undefined ? {} : { publishedBy }) },
        );
        if (atomic?.batch) {
          deps.deliverLive(atomic.batch, JSON.stringify(toClientEnvelope(envelope)), envelope);
          return { result, replayed: false };
        }
        if (atomic) {
          assertSameOwner(atomic.event, publishedBy);
          if (atomic.event.fanningOut) await fanOut(atomic.event.id);
          return { result: atomic.event.result, replayed: true };
        }
      }
      const { created, event } = await deps.store.createEvent(
        envelope,
        users,
        result,
        publishedBy === undefined ? {} : { publishedBy },
      );
      if (!created) {
        assertSameOwner(event, publishedBy);
        // A re-post while the first fan-out is still running waits for the same durability.
        if (event.fanningOut && users.length <= deps.syncFanoutLimit) await fanOut(event.id);
        return { result: event.result, replayed: true };
      }
      if (users.length <= deps.syncFanoutLimit) {
        await fanOut(event.id, envelope);
      } else {
        fanOut(event.id, envelope).catch((error) => deps.onError(event.id, error));
      }
      return { result, replayed: false };
    },
    async resumeUnfinished() {
      const ids = await deps.store.unfinishedFanouts();
      for (const id of ids) fanOut(id).catch((error) => deps.onError(id, error));
      return ids.length;
    },
    async idle() {
      while (running.size > 0) await Promise.allSettled([...running.values()]);
    },
  };
}
