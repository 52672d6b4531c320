/**
 * The adapter-neutral rules of stored events and stream items: what a new event's record
 * holds, what a target's item is (quiet or shown, waiting for an ack or not), and which
 * items show in the inbox, hide, or replace older ones. Every store adapter writes these.
 */

import { type Envelope, isDurable, needsAck } from "../schemas/envelope.ts";
import type {
  DeliveryClaims,
  EventRecord,
  PendingAck,
  PublishResult,
  SeqSource,
  StreamItem,
  TargetPlan,
} from "./store.ts";

/** The record of a newly published event. */
export function eventRecord(
  envelope: Envelope,
  result: PublishResult,
  options: { chunks: number; fanningOut: boolean; publishedBy: string | undefined },
): EventRecord {
  const { id, type, expiration, collapse_key } = envelope.metadata;
  return {
    id,
    type,
    acceptedAt: Date.parse(result.accepted_at),
    ...(expiration ? { expiresAt: Date.parse(expiration) } : {}),
    durable: isDurable(envelope),
    ackRequired: needsAck(envelope),
    retry: envelope.routing.retry,
    chunks: options.chunks,
    result,
    fanningOut: options.fanningOut,
    ...(collapse_key ? { collapseKey: collapse_key } : {}),
    ...(options.publishedBy === undefined ? {} : { publishedBy: options.publishedBy }),
  };
}

/**
 * A target's new item of `event` at `seq`, whether it is quiet (its in-app channel is
 * off: kept for order and email only) and the pending ack it starts, if it needs one.
 */
export function targetItem(
  event: EventRecord,
  options: { seq: number; now: number; plan?: TargetPlan },
): { item: StreamItem; quiet: boolean; pending?: PendingAck } {
  const { seq, now, plan } = options;
  const { id } = event;
  // An item that needs an ack is shown whatever the preferences say.
  const quiet = plan?.quiet === true && !event.ackRequired;
  // Built field by field rather than spread: one object per target of a large fan-out.
  const item: StreamItem = {
    seq,
    id,
    type: event.type,
    durable: event.durable,
    ack: event.ackRequired,
    at: now,
  };
  if (event.expiresAt) item.exp = event.expiresAt;
  if (quiet) item.quiet = true;
  if (!event.ackRequired) return { item, quiet };
  const pending: PendingAck = {
    seq,
    id,
    attempts: 0,
    limit: event.retry.enabled ? event.retry.limit : 0,
    backoff: event.retry.backoff,
  };
  if (event.expiresAt) pending.exp = event.expiresAt;
  return { item, quiet, pending };
}

/** Whether a newer unread item of `event` replaces an older one with the same key. */
export const collapses = (event: EventRecord): boolean =>
  event.collapseKey !== undefined && event.durable &&
  (event.type === "NOTIFICATION" || event.type === "SYSTEM");

/** Whether an item shows in the inbox. */
export const isInboxItem = (item: StreamItem): boolean =>
  (item.type === "NOTIFICATION" || (item.type === "SYSTEM" && item.durable)) && !item.quiet &&
  item.replacedBy === undefined;

/** Items kept in the stream for order only: never replayed nor listed. */
export const isHidden = (item: StreamItem): boolean =>
  item.quiet === true || item.replacedBy !== undefined;

/**
 * Takes from `source` the next seq of every user of `users` whose stream head is live and
 * who holds none in `taken` yet, and records it there. Every take is made before this
 * returns, in the order of `users`, so a head hands its seqs in the order writes arrive;
 * the answer settles once every seq a head must first reserve is known (and in `taken`),
 * and rejects with the first failure once all have settled.
 *
 * A write keeps `taken` across its retries, deletes each seq it commits, and gives the
 * rest back with {@linkcode dropSeqs} once the answer has settled (a seq still awaited
 * would be missed).
 */
export function takeSeqs(
  source: SeqSource | undefined,
  users: readonly string[],
  taken: Map<string, number>,
): Promise<void> {
  if (!source) return Promise.resolve();
  const waits: Promise<void>[] = [];
  const failures: unknown[] = [];
  // A user listed twice takes one seq.
  const asked = new Set<string>();
  for (const user of users) {
    if (taken.has(user) || asked.has(user)) continue;
    asked.add(user);
    const seq = source.take(user);
    if (seq === undefined) continue;
    if (typeof seq === "number") taken.set(user, seq);
    else {
      waits.push(seq.then((value) => void taken.set(user, value), (error) => {
        failures.push(error);
      }));
    }
  }
  if (waits.length === 0) return Promise.resolve();
  return Promise.all(waits).then(() => {
    if (failures.length > 0) throw failures[0];
  });
}

/**
 * Gives back every seq left in `taken` (taken but not written), except those of `keep`,
 * and forgets them.
 */
export function dropSeqs(
  source: SeqSource | undefined,
  taken: Map<string, number>,
  keep?: ReadonlySet<string>,
): void {
  for (const [user, seq] of taken) {
    if (keep?.has(user)) continue;
    taken.delete(user);
    source?.drop(user, seq);
  }
}

/**
 * Claims the deliveries of a batch's targets written at seqs assigned at publish (their
 * items went out before this write: see `DeliveryClaims`), adding those taken to
 * `claimed`. All before anything of the batch is written: a claim that throws leaves
 * nothing half done, and what `claimed` holds is given back by {@linkcode releaseClaims}.
 */
export function claimDeliveries(
  claims: DeliveryClaims | undefined,
  event: EventRecord,
  users: readonly string[],
  assigned: ReadonlyMap<string, number> | undefined,
  claimed: Set<string>,
): void {
  if (!claims || !event.durable || !assigned) return;
  for (const user of users) {
    if (assigned.has(user) && !claimed.has(user) && claims.claim(event.id, user)) {
      claimed.add(user);
    }
  }
}

/** Gives back the claims of batches that were not written, and forgets them. */
export function releaseClaims(
  claims: DeliveryClaims | undefined,
  id: string,
  claimed: Set<string>,
): void {
  for (const user of claimed) claims?.release(id, user);
  claimed.clear();
}

/**
 * Runs `work` while the seqs of {@linkcode takeSeqs} are awaited, and answers its result
 * once both have settled (so that nothing taken is still on its way when a failure is
 * thrown and the taken seqs given back).
 */
export async function whileTaking<T>(ready: Promise<void>, work: () => Promise<T>): Promise<T> {
  const [seqs, done] = await Promise.allSettled([ready, Promise.resolve().then(work)]);
  if (seqs.status === "rejected") throw seqs.reason;
  if (done.status === "rejected") throw done.reason;
  return done.value;
}
