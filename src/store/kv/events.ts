/**
 * Published events on Deno KV: the record, the body (in the record when small, else in
 * chunks of its own), the one-commit publish (grouped with concurrent ones) and the job
 * fan-out for larger audiences, and the delivery status across the audience.
 */

import { LRUCache } from "lru-cache";
import type { Envelope } from "../../schemas/envelope.ts";
import { collapses, dropSeqs, eventRecord, takeSeqs, whileTaking } from "../items.ts";
import * as keys from "../keys.ts";
import { chunk, getManyEntries } from "../kv_reads.ts";
import type {
  AtomicPublish,
  EventRecord,
  EventStatus,
  EventStore,
  FanoutBatch,
  FanoutPlanner,
  PublishOptions,
  PublishResult,
  SeqOptions,
  TargetPlan,
  TargetRecord,
} from "../store.ts";
import {
  type CommitCost,
  createVersionedGroupCommit,
  deleteAll,
  MAX_RETRIES,
  retryPause,
} from "./_commit.ts";
import { keyBytesOf, keyPartBytes, MAX_BYTES, MAX_KEY_BYTES, MAX_VALUE_CHARS } from "./limits.ts";
import {
  addTargetItem,
  createKvFanout,
  FANOUT_BATCH,
  FANOUT_BATCH_WIDE,
  type Job,
  jobListKeys,
  laneKey,
  lanesFor,
  olderUnread,
} from "./fanout.ts";

/** Characters of user ids per job target chunk. */
const TARGET_CHUNK_CHARS = 24_000;
/**
 * Target chunks per commit: a chunk takes up to two bytes per character (a string with a
 * character past Latin-1 is stored in UTF-16), and a commit at most 800 KiB.
 */
const TARGET_CHUNKS_PER_COMMIT = Math.floor(MAX_BYTES / (2 * TARGET_CHUNK_CHARS + 1024));
/**
 * Target chunks per commit when seqs are assigned: each chunk also has its seqs, one
 * number per id (at most a fifth of its characters, see `chunkByChars`), at most nine
 * bytes each.
 */
const SEQ_CHUNKS_PER_COMMIT = Math.floor(
  MAX_BYTES / (2 * TARGET_CHUNK_CHARS + 9 * (TARGET_CHUNK_CHARS / 5) + 2048),
);
/** Envelopes kept in memory, most recently stored or read. */
const ENVELOPE_CACHE = 5_000;

function chunkByChars(ids: string[], budget: number): string[][] {
  const out: string[][] = [];
  let current: string[] = [];
  let size = 0;
  for (const id of ids) {
    if (current.length > 0 && size + id.length > budget) {
      out.push(current);
      current = [];
      size = 0;
    }
    current.push(id);
    size += id.length + 4;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/**
 * Bodies up to this many characters are stored in their event's record: a publish then
 * writes one key, not two (the record and one chunk), which is most of what an ephemeral
 * event costs the store.
 */
const INLINE_BODY_CHARS = 16 * 1024;

/**
 * The record of a new event and where its JSON body goes: in the record when the two fit
 * in one KV value, else in chunks of their own. `chars` bounds what the record and the body
 * hold, for the commit's budget.
 */
function storedEvent(
  envelope: Envelope,
  result: PublishResult,
  options: { fanningOut: boolean; publishedBy: string | undefined },
): { event: EventRecord; parts: string[]; chars: number } {
  const body = JSON.stringify(envelope);
  const event = eventRecord(envelope, result, { chunks: 0, ...options });
  // The unknown targets listed in the result may take a good part of a value.
  const chars = JSON.stringify(event).length + body.length;
  if (body.length <= INLINE_BODY_CHARS && chars <= MAX_VALUE_CHARS) {
    event.body = body;
    return { event, parts: [], chars };
  }
  const parts = bodyParts(body);
  event.chunks = parts.length;
  return { event, parts, chars };
}

/** Splits an event's JSON body into chunks that each fit in one KV value. */
function bodyParts(body: string): string[] {
  const parts: string[] = [];
  for (let i = 0; i < body.length; i += MAX_VALUE_CHARS) {
    parts.push(body.slice(i, i + MAX_VALUE_CHARS));
  }
  return parts;
}

/**
 * What writing an event, its body and one stream item per target in one atomic operation
 * costs, or `undefined` when that does not fit in one: the event's check, one per target
 * whose seq the store allocates (`checked`; none for a seq taken from a head) and one per
 * target's collapse mark, at most eleven keys per target (checked keys count among a
 * commit's keys), and KV's caps on the total size of keys (80 KiB) and of the whole commit
 * (800 KiB), in bytes: a user id of 200 characters may take 600.
 */
function oneCommitCost(
  targets: string[],
  event: { record: EventRecord; parts: string[]; chars: number; wide: boolean; checked: number },
): CommitCost | undefined {
  if (targets.length === 0) return undefined;
  if (targets.length > (event.wide ? FANOUT_BATCH_WIDE : FANOUT_BATCH)) return undefined;
  const { id, collapseKey } = event.record;
  const perTarget = event.wide ? 11 : 6;
  // Every key of a target names the user, its kind and at most a number; two of them name
  // the event id too (delivery record, mail task) and two the collapse key (its mark,
  // checked and set): an upper bound in bytes.
  const shared = 2 * keyPartBytes(id) +
    (collapseKey === undefined ? 0 : 2 * keyPartBytes(collapseKey));
  const keyBytes = targets.reduce(
    (sum, user) => sum + perTarget * keyBytesOf(user) + shared,
    keyBytesOf(id) * (1 + event.parts.length),
  );
  // Values: two bytes per character at most, and under 1 KiB per target's values.
  const bytes = keyBytes + event.chars * 2 + targets.length * 1024;
  if (keyBytes > MAX_KEY_BYTES || bytes > MAX_BYTES) return undefined;
  return {
    checks: 1 + event.checked + (collapses(event.record) ? targets.length : 0),
    mutations: 1 + event.parts.length + perTarget * targets.length,
    keyBytes,
    bytes,
  };
}

/** Creates the event port on an open Deno KV handle. */
export function createKvEventStore(
  kv: Deno.Kv,
  options: { recentWindowMs: number },
): EventStore {
  const envelopes = new LRUCache<string, Envelope>({ max: ENVELOPE_CACHE });
  // Publishes share commits; a batch keeps its commit's versionstamp (`FanoutBatch.version`).
  const commitGrouped = createVersionedGroupCommit<FanoutBatch["items"]>(kv);

  function remember(id: string, envelope: Envelope) {
    envelopes.set(id, envelope);
  }

  async function getEnvelope(id: string): Promise<Envelope | undefined> {
    const cached = envelopes.get(id);
    if (cached) return cached;
    const event = (await kv.get<EventRecord>(keys.eventKey(id))).value;
    if (!event) return undefined;
    if (event.body !== undefined) {
      const envelope = JSON.parse(event.body) as Envelope;
      remember(id, envelope);
      return envelope;
    }
    const parts = await getManyEntries<string>(
      kv,
      Array.from({ length: event.chunks }, (_, i) => keys.eventBodyKey(id, i)),
    );
    if (parts.some((p) => p.value === null)) return undefined;
    const envelope = JSON.parse(parts.map((p) => p.value).join("")) as Envelope;
    remember(id, envelope);
    return envelope;
  }

  /**
   * Stores the target list in chunks, at least one per lane (a lane writes whole chunks);
   * answers how many. The list is stored in key order: the users of one job batch are then
   * neighbours in KV, and so are the keys the batch writes for them (delivery records,
   * and the stream items and unread marks of users with short streams), where users in the
   * audience's order (random ids) each dirty a page of their own: 3–5 times the writer's
   * work for a 10,000-user fan-out.
   */
  async function writeTargets(
    id: string,
    targets: string[],
    token: string,
    lanes: number,
    assigned: ReadonlyMap<string, number> | undefined,
  ): Promise<number> {
    const chars = targets.reduce((sum, target) => sum + target.length + 4, 0);
    const ordered = targets.toSorted();
    const chunks = chunkByChars(ordered, Math.min(TARGET_CHUNK_CHARS, Math.ceil(chars / lanes)));
    const perCommit = assigned ? SEQ_CHUNKS_PER_COMMIT : TARGET_CHUNKS_PER_COMMIT;
    for (const group of chunk(chunks.map((c, i) => [i, c] as const), perCommit)) {
      const op = kv.atomic();
      for (const [i, ids] of group) {
        op.set(keys.jobTargetsKey(id, i, token), ids);
        if (assigned) op.set(keys.jobSeqsKey(id, i, token), ids.map((u) => assigned.get(u) ?? 0));
      }
      const res = await op.commit();
      if (!res.ok) throw new Error(`Cannot store the targets of event "${id}"`);
    }
    return chunks.length;
  }

  /**
   * Stores an event with no target to write (its items, if any, live in memory): the
   * record and body only, in a commit shared with concurrent publishes, if the id is free.
   */
  async function createRecordOnly(
    envelope: Envelope,
    result: PublishResult,
    publishOptions: PublishOptions,
  ): Promise<{ created: boolean; event: EventRecord }> {
    const id = envelope.metadata.id;
    const { event, parts, chars } = storedEvent(envelope, result, {
      fanningOut: false,
      publishedBy: publishOptions.publishedBy,
    });
    const keyBytes = keyBytesOf(id) * (1 + parts.length);
    const landed = await commitGrouped({
      id,
      users: [],
      cost: { checks: 1, mutations: 1 + parts.length, keyBytes, bytes: keyBytes + chars * 2 },
      build: (op) => {
        op.check({ key: keys.eventKey(id), versionstamp: null }).set(keys.eventKey(id), event);
        parts.forEach((part, i) => op.set(keys.eventBodyKey(id, i), part));
        return [];
      },
    });
    if (landed) {
      remember(id, envelope);
      return { created: true, event };
    }
    const first = await kv.get<EventRecord>(keys.eventKey(id));
    if (first.value) return { created: false, event: first.value };
    throw new Error(`Cannot store event "${id}"`);
  }

  async function createEvent(
    envelope: Envelope,
    targets: string[],
    result: PublishResult,
    publishOptions: PublishOptions & { assigned?: ReadonlyMap<string, number> } = {},
  ) {
    const id = envelope.metadata.id;
    if (targets.length === 0) return await createRecordOnly(envelope, result, publishOptions);
    const existing = await kv.get<EventRecord>(keys.eventKey(id));
    if (existing.value) return { created: false, event: existing.value };

    const { event, parts: bodyChunks } = storedEvent(envelope, result, {
      fanningOut: targets.length > 0,
      publishedBy: publishOptions.publishedBy,
    });
    // Target chunks go first, in their own commits: they may be larger than one atomic
    // operation holds, and without the event record below they are never read. They are
    // stored under this attempt's own token: a publish of the same id racing this one
    // (another service's, or another audience) cannot overwrite the list the winner's
    // job reads.
    const token = crypto.randomUUID();
    const wanted = lanesFor(targets.length);
    const assigned = publishOptions.assigned?.size ? publishOptions.assigned : undefined;
    const targetChunks = await writeTargets(id, targets, token, wanted, assigned);
    const lanes = Math.min(wanted, targetChunks);
    const op = kv.atomic().check({ key: keys.eventKey(id), versionstamp: null })
      .set(keys.eventKey(id), event);
    bodyChunks.forEach((part, i) => op.set(keys.eventBodyKey(id, i), part));
    // One key per lane: lane k starts at chunk k.
    for (let lane = 0; lane < lanes; lane++) {
      op.set(
        laneKey(id, lane),
        {
          id,
          chunks: targetChunks,
          chunk: lane,
          offset: 0,
          targets: token,
          ...(lanes > 1 ? { lanes } : {}),
          ...(assigned ? { seqs: true as const } : {}),
        } satisfies Job,
      );
    }
    const res = await op.commit();
    if (!res.ok) {
      try {
        await deleteAll(kv, jobListKeys(id, targetChunks, token, assigned !== undefined));
      } catch {
        // Left-over chunks are never read: no job names their token.
      }
      const first = await kv.get<EventRecord>(keys.eventKey(id));
      if (first.value) return { created: false, event: first.value };
      throw new Error(`Cannot store event "${id}"`);
    }
    remember(id, envelope);
    return { created: true, event };
  }

  async function publishAtomic(
    envelope: Envelope,
    targets: string[],
    result: PublishResult,
    publishOptions: PublishOptions & SeqOptions & { plan?: FanoutPlanner } = {},
  ): Promise<AtomicPublish | undefined> {
    const id = envelope.metadata.id;
    const { event, parts, chars } = storedEvent(envelope, result, {
      fanningOut: false,
      publishedBy: publishOptions.publishedBy,
    });
    const collapsing = collapses(event);
    const wide = collapsing || publishOptions.plan !== undefined;
    // Whether it fits whoever has a head: seqs are taken only for a publish that does.
    if (!oneCommitCost(targets, { record: event, parts, chars, wide, checked: targets.length })) {
      return undefined;
    }
    const { seqs: source, plan } = publishOptions;
    // Seqs taken from heads, by user: taken once, before anything is read for the
    // publish (heads hand them in the order publishes arrive), kept across retries, and
    // given back unless written.
    const taken = new Map<string, number>();
    try {
      const ready = takeSeqs(source, targets, taken);
      let plans: TargetPlan[] | undefined;
      if (plan) plans = await whileTaking(ready, () => plan(targets, event));
      else await ready;
      const checked = targets.filter((user) => !taken.has(user));
      const cost = oneCommitCost(targets, {
        record: event,
        parts,
        chars,
        wide,
        checked: checked.length,
      })!;
      const context = { collapsing, recentWindowMs: options.recentWindowMs };
      for (let retries = 0;; retries++) {
        const unheaded = targets.filter((user) => !taken.has(user));
        // Every target with a head: nothing to read on the first try, whose commit checks
        // that the id is free (a failed one reads it, below, on the next).
        const [first, ...read] = retries === 0 && unheaded.length === 0
          ? [{ value: null }]
          : await getManyEntries<unknown>(kv, [
            keys.eventKey(id),
            ...unheaded.map((u) => keys.seqKey(u)),
          ]);
        if (first.value) return { created: false, event: first.value as EventRecord };
        const stored = new Map(unheaded.map((user, i) => [user, read[i]]));
        // A head that opened (or began to) since the first take reserved its range above
        // what was just read: such a user takes from it instead, or this write could land
        // inside the head's range.
        await takeSeqs(source, unheaded, taken);
        const older = collapsing
          ? await olderUnread(kv, targets, event.collapseKey!, plans)
          : undefined;
        const now = Date.now();
        const build = (op: Deno.AtomicOperation) => {
          op.check({ key: keys.eventKey(id), versionstamp: null }).set(keys.eventKey(id), event);
          parts.forEach((part, i) => op.set(keys.eventBodyKey(id, i), part));
          return targets.map((user, i) =>
            addTargetItem(op, event, {
              user,
              seq: taken.get(user) ?? stored.get(user) as Deno.KvEntryMaybe<number>,
              ...(plans?.[i] ? { plan: plans[i] } : {}),
              ...older?.[i],
            }, { ...context, now })
          );
        };
        // Every target, with a head or not: two writes to one user never share a commit
        // (both could replace the same older item under a collapse key).
        const landed = await commitGrouped({ id, users: targets, cost, build });
        if (landed) {
          // Written: these seqs are the batch's now, handed back with it.
          taken.clear();
          remember(id, envelope);
          const batch = { event, items: landed.written, version: landed.versionstamp };
          return { created: true, event, batch };
        }
        // Another publish moved one of these users' seq, or the same id was just stored:
        // the next read tells which.
        if (retries >= MAX_RETRIES) {
          throw new Error(`Cannot store event "${id}": keeps conflicting`);
        }
        await retryPause(retries);
      }
    } finally {
      dropSeqs(source, taken);
    }
  }

  async function getStatus(id: string): Promise<EventStatus | undefined> {
    const event = (await kv.get<EventRecord>(keys.eventKey(id))).value;
    if (!event) return undefined;
    const [delivered, acked, failed] = (await kv.getMany<Deno.KvU64[]>([
      keys.counterKey(id, "delivered"),
      keys.counterKey(id, "acked"),
      keys.counterKey(id, "failed"),
    ])).map((e) => Number(e.value?.value ?? 0n));
    const pendingUsers: string[] = [];
    // Ephemeral events keep no per-target record: nobody is waited on, deliveries are counted.
    const listed = event.durable ? kv.list<TargetRecord>({ prefix: keys.targetPrefix(id) }) : [];
    for await (const entry of listed) {
      const { state } = entry.value;
      const open = event.ackRequired ? state === "pending" || state === "delivered" : state ===
        "pending";
      if (open) pendingUsers.push(entry.key[2] as string);
      if (pendingUsers.length >= 100) break;
    }
    const targeted = event.result.targeted;
    return {
      id,
      type: event.type,
      accepted_at: event.result.accepted_at,
      ack_required: event.ackRequired,
      fan_out: event.fanningOut ? "running" : "done",
      targeted,
      // A replay can count an ephemeral delivery twice: never more than the targets.
      delivered: event.durable ? delivered : Math.min(delivered, targeted),
      acked,
      failed,
      acked_all: event.ackRequired && !event.fanningOut && acked === targeted,
      pending_users: pendingUsers,
      unknown_targets: event.result.unknown_targets,
      unknown_count: event.result.unknown_count ?? event.result.unknown_targets.length,
    };
  }

  return {
    createEvent,
    publishAtomic,
    ...createKvFanout(kv, options),
    getEvent: async (id) => (await kv.get<EventRecord>(keys.eventKey(id))).value ?? undefined,
    getEnvelope,
    getStatus,
  };
}
