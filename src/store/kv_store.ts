/**
 * The Deno KV adapter of the store port.
 *
 * Every multi-key write is one `kv.atomic()` with `check()`s; a commit that loses a race
 * is retried from a fresh read, never ignored.
 */

import type { Envelope } from "../schemas/envelope.ts";
import { isDurable, needsAck } from "../schemas/envelope.ts";
import * as keys from "./keys.ts";
import { chunk, GET_MANY, getManyEntries } from "./kv_reads.ts";
import type {
  AtomicPublish,
  DeadLetter,
  Erased,
  EventRecord,
  EventStatus,
  FanoutBatch,
  FanoutPlanner,
  InboxPage,
  MailTask,
  PendingAck,
  PublishOptions,
  PublishResult,
  Store,
  StreamItem,
  StreamRead,
  TargetPlan,
  TargetRecord,
} from "./store.ts";
import type { TicketRecord } from "./ticket_store.ts";

/** Users written per fan-out commit: one check per user, under KV's 100 checks. */
const FANOUT_BATCH = 90;
/**
 * Users per commit when items may replace older ones or queue mail: each user then
 * writes up to ten keys, and a commit holds at most 80 KiB of keys.
 */
const FANOUT_BATCH_WIDE = 40;
/** Characters per body chunk: UTF-16 strings stay under KV's 64 KiB values. */
const BODY_CHUNK_CHARS = 30_000;
/** Characters of user ids per job target chunk. */
const TARGET_CHUNK_CHARS = 24_000;
const ENVELOPE_CACHE = 5_000;
/** Targets recorded as delivered per commit: one check each, under KV's 100 checks. */
const RECORD_BATCH = 90;
/** Budgets of a one-commit publish, under KV's 80 KiB of keys and 800 KiB per commit. */
const ONE_COMMIT_KEY_BYTES = 64 * 1024;
const ONE_COMMIT_BYTES = 640 * 1024;
/** KV's caps on the checks and mutations of one atomic operation. */
const MAX_CHECKS = 100;
const MAX_MUTATIONS = 1000;
/** Most one-commit publishes grouped in one commit. */
const GROUP_MAX = 64;
const MAX_RETRIES = 50;

interface Job {
  id: string;
  chunks: number;
  chunk: number;
  offset: number;
  /** The token its target chunks are stored under; absent on jobs written before tokens. */
  targets?: string;
}

interface UnreadMark {
  exp?: number;
}

/** Options of {@linkcode createKvStore}. */
export interface KvStoreOptions {
  /** How long items that are not durable stay available for resume. */
  recentWindowMs: number;
}

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

const isInboxItem = (item: StreamItem) =>
  (item.type === "NOTIFICATION" || (item.type === "SYSTEM" && item.durable)) && !item.quiet &&
  item.replacedBy === undefined;
/** Items kept in the stream for order only: never replayed nor listed. */
const isHidden = (item: StreamItem) => item.quiet === true || item.replacedBy !== undefined;

interface CollapseMark {
  seq: number;
  id: string;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Splits an event's JSON body into chunks that each fit in one KV value. */
function bodyParts(body: string): string[] {
  const parts: string[] = [];
  for (let i = 0; i < body.length; i += BODY_CHUNK_CHARS) {
    parts.push(body.slice(i, i + BODY_CHUNK_CHARS));
  }
  return parts;
}

/** The stored record of a newly published event. */
function eventRecord(
  envelope: Envelope,
  result: PublishResult,
  chunks: number,
  fanningOut: boolean,
  publishedBy: string | undefined,
): EventRecord {
  const expiration = envelope.metadata.expiration;
  return {
    id: envelope.metadata.id,
    type: envelope.metadata.type,
    acceptedAt: Date.parse(result.accepted_at),
    ...(expiration ? { expiresAt: Date.parse(expiration) } : {}),
    durable: isDurable(envelope),
    ackRequired: needsAck(envelope),
    retry: envelope.routing.retry,
    chunks,
    result,
    fanningOut,
    ...(envelope.metadata.collapse_key ? { collapseKey: envelope.metadata.collapse_key } : {}),
    ...(publishedBy === undefined ? {} : { publishedBy }),
  };
}

/** What a one-commit publish adds to a commit, as upper bounds. */
interface CommitCost {
  checks: number;
  mutations: number;
  keyBytes: number;
  bytes: number;
}

/**
 * What writing an event, its body and one stream item per target in one atomic operation
 * costs, or `undefined` when that does not fit in one: one check per target plus the
 * event's, at most ten keys per target, and KV's caps on the total size of keys (80 KiB)
 * and of the whole commit (800 KiB).
 */
function oneCommitCost(
  targets: string[],
  event: { record: EventRecord; parts: string[]; wide: boolean },
): CommitCost | undefined {
  if (targets.length === 0) return undefined;
  if (targets.length > (event.wide ? FANOUT_BATCH_WIDE : FANOUT_BATCH)) return undefined;
  const { id, collapseKey } = event.record;
  const perTarget = event.wide ? 10 : 6;
  // Every key of a target names the user and at most the event id or the collapse key,
  // plus its kind and a number: a generous upper bound in bytes.
  const keyBytes = targets.reduce(
    (sum, user) => sum + perTarget * (user.length + id.length + (collapseKey?.length ?? 0) + 32),
    (id.length + 32) * (1 + event.parts.length),
  );
  // Values: two bytes per character at most, and under 1 KiB per target's values.
  const chars = event.parts.reduce((sum, part) => sum + part.length, 0) +
    JSON.stringify(event.record).length;
  const bytes = keyBytes + chars * 2 + targets.length * 1024;
  if (keyBytes > ONE_COMMIT_KEY_BYTES || bytes > ONE_COMMIT_BYTES) return undefined;
  return {
    checks: 1 + targets.length,
    mutations: 1 + event.parts.length + perTarget * targets.length,
    keyBytes,
    bytes,
  };
}

/** One target of a fan-out commit: its seq as read, its plan and the item it replaces. */
interface TargetWrite {
  user: string;
  seq: Deno.KvEntryMaybe<number>;
  plan?: TargetPlan;
  /** The older unread item with the same collapse key, when the event collapses. */
  previous?: StreamItem;
}

/**
 * Adds one target's stream item and everything written with it (seq check, delivery
 * record, pending ack, unread mark, collapse replacement, mail task) to `op`.
 *
 * Shared by the job fan-out and the one-commit publish, so both write the same keys.
 */
function addTargetItem(
  op: Deno.AtomicOperation,
  event: EventRecord,
  target: TargetWrite,
  context: { now: number; collapsing: boolean; recentWindowMs: number },
): FanoutBatch["items"][number] {
  const { user, plan } = target;
  const { id } = event;
  const { now, collapsing } = context;
  const seq = (target.seq.value ?? 0) + 1;
  // An item that needs an ack is shown whatever the preferences say.
  const quiet = plan?.quiet === true && !event.ackRequired;
  op.check(target.seq).set(keys.seqKey(user), seq);
  const item: StreamItem = {
    seq,
    id,
    type: event.type,
    durable: event.durable,
    ack: event.ackRequired,
    at: now,
    ...(event.expiresAt ? { exp: event.expiresAt } : {}),
    ...(quiet ? { quiet: true } : {}),
  };
  op.set(
    keys.streamKey(user, seq),
    item,
    event.durable ? undefined : { expireIn: context.recentWindowMs + 60_000 },
  );
  op.set(
    keys.targetKey(id, user),
    { seq, state: quiet ? "muted" : "pending", at: now } satisfies TargetRecord,
  );
  if (event.durable) op.set(keys.byIdKey(user, id), seq);
  const pending: PendingAck | undefined = event.ackRequired
    ? {
      seq,
      id,
      attempts: 0,
      limit: event.retry.enabled ? event.retry.limit : 0,
      backoff: event.retry.backoff,
      ...(event.expiresAt ? { exp: event.expiresAt } : {}),
    }
    : undefined;
  if (pending) op.set(keys.pendingKey(user, seq), pending);
  if (isInboxItem(item)) {
    op.set(
      keys.unreadKey(user, seq),
      (event.expiresAt ? { exp: event.expiresAt } : {}) satisfies UnreadMark,
    );
  }
  let replaces: { id: string; seq: number } | undefined;
  if (collapsing && !quiet) {
    const old = target.previous;
    if (old) {
      op.delete(keys.unreadKey(user, old.seq));
      op.set(keys.streamKey(user, old.seq), { ...old, replacedBy: id });
      replaces = { id: old.id, seq: old.seq };
    }
    op.set(keys.collapseKey(user, event.collapseKey!), { seq, id } satisfies CollapseMark);
  }
  if (plan?.mailAt !== undefined) {
    const taskId = `${id}:${user}`;
    op.set(
      keys.mailTaskKey(plan.mailAt, taskId),
      { kind: "item", id: taskId, user, event: id, seq, attempts: 0 } satisfies MailTask,
    );
  }
  return {
    user,
    item,
    ...(pending ? { pending } : {}),
    ...(replaces ? { replaces } : {}),
  };
}

/** Creates the store on an open Deno KV handle. */
export function createKvStore(kv: Deno.Kv, options: KvStoreOptions): Store {
  const envelopes = new Map<string, Envelope>();

  function remember(id: string, envelope: Envelope) {
    if (envelopes.size >= ENVELOPE_CACHE) {
      envelopes.delete(envelopes.keys().next().value!);
    }
    envelopes.set(id, envelope);
  }

  async function getEnvelope(id: string): Promise<Envelope | undefined> {
    const cached = envelopes.get(id);
    if (cached) return cached;
    const event = (await kv.get<EventRecord>(keys.eventKey(id))).value;
    if (!event) return undefined;
    const parts = await getManyEntries<string>(
      kv,
      Array.from({ length: event.chunks }, (_, i) => keys.eventBodyKey(id, i)),
    );
    if (parts.some((p) => p.value === null)) return undefined;
    const envelope = JSON.parse(parts.map((p) => p.value).join("")) as Envelope;
    remember(id, envelope);
    return envelope;
  }

  async function writeTargets(id: string, targets: string[], token: string): Promise<number> {
    const chunks = chunkByChars(targets, TARGET_CHUNK_CHARS);
    for (const group of chunk(chunks.map((c, i) => [i, c] as const), 20)) {
      const op = kv.atomic();
      for (const [i, ids] of group) op.set(keys.jobTargetsKey(id, i, token), ids);
      const res = await op.commit();
      if (!res.ok) throw new Error(`Cannot store the targets of event "${id}"`);
    }
    return chunks.length;
  }

  async function createEvent(
    envelope: Envelope,
    targets: string[],
    result: PublishResult,
    publishOptions: PublishOptions = {},
  ) {
    const id = envelope.metadata.id;
    const existing = await kv.get<EventRecord>(keys.eventKey(id));
    if (existing.value) return { created: false, event: existing.value };

    const bodyChunks = bodyParts(JSON.stringify(envelope));
    const event = eventRecord(
      envelope,
      result,
      bodyChunks.length,
      targets.length > 0,
      publishOptions.publishedBy,
    );
    // Target chunks go first, in their own commits: they may be larger than one atomic
    // operation holds, and without the event record below they are never read. They are
    // stored under this attempt's own token: a publish of the same id racing this one
    // (another service's, or another audience) cannot overwrite the list the winner's
    // job reads.
    const token = crypto.randomUUID();
    const targetChunks = targets.length > 0 ? await writeTargets(id, targets, token) : 0;
    const op = kv.atomic().check({ key: keys.eventKey(id), versionstamp: null })
      .set(keys.eventKey(id), event);
    bodyChunks.forEach((part, i) => op.set(keys.eventBodyKey(id, i), part));
    if (targets.length > 0) {
      op.set(
        keys.jobKey(id),
        { id, chunks: targetChunks, chunk: 0, offset: 0, targets: token } satisfies Job,
      );
    }
    const res = await op.commit();
    if (!res.ok) {
      try {
        await deleteAll(
          Array.from({ length: targetChunks }, (_, i) => keys.jobTargetsKey(id, i, token)),
        );
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

  /** A one-commit publish ready to commit, alone or grouped with others. */
  interface Prepared {
    id: string;
    users: string[];
    cost: CommitCost;
    /** Adds the publish to `op`; answers the items it writes. */
    build(op: Deno.AtomicOperation): FanoutBatch["items"];
    done(items: FanoutBatch["items"] | undefined): void;
    fail(error: unknown): void;
  }
  const waiting: Prepared[] = [];
  let draining = false;

  /**
   * Commits a prepared publish; answers its items, or `undefined` when one of its checks
   * failed. Publishes that arrive while a commit is in flight go together in the next
   * one (KV commits one at a time, so a commit of many costs about as much as one),
   * when their users and ids are disjoint and their sum fits in one atomic operation.
   */
  function commitGrouped(
    prepared: Omit<Prepared, "done" | "fail">,
  ): Promise<FanoutBatch["items"] | undefined> {
    return new Promise((done, fail) => {
      waiting.push({ ...prepared, done, fail });
      if (!draining) void drainGroups();
    });
  }

  function takeGroup(): Prepared[] {
    const group: Prepared[] = [];
    const rest: Prepared[] = [];
    const users = new Set<string>();
    const ids = new Set<string>();
    const sum: CommitCost = { checks: 0, mutations: 0, keyBytes: 0, bytes: 0 };
    for (const p of waiting) {
      const fits = group.length < GROUP_MAX && !ids.has(p.id) &&
        p.users.every((u) => !users.has(u)) &&
        sum.checks + p.cost.checks <= MAX_CHECKS &&
        sum.mutations + p.cost.mutations <= MAX_MUTATIONS &&
        sum.keyBytes + p.cost.keyBytes <= ONE_COMMIT_KEY_BYTES &&
        sum.bytes + p.cost.bytes <= ONE_COMMIT_BYTES;
      if (!fits) {
        rest.push(p);
        continue;
      }
      group.push(p);
      ids.add(p.id);
      for (const u of p.users) users.add(u);
      sum.checks += p.cost.checks;
      sum.mutations += p.cost.mutations;
      sum.keyBytes += p.cost.keyBytes;
      sum.bytes += p.cost.bytes;
    }
    waiting.splice(0, waiting.length, ...rest);
    return group;
  }

  async function commitAlone(p: Prepared) {
    try {
      const op = kv.atomic();
      const items = p.build(op);
      p.done((await op.commit()).ok ? items : undefined);
    } catch (error) {
      p.fail(error);
    }
  }

  async function drainGroups() {
    draining = true;
    try {
      while (waiting.length > 0) {
        const group = takeGroup();
        if (group.length === 1) {
          await commitAlone(group[0]);
          continue;
        }
        let built: FanoutBatch["items"][] = [];
        let ok = false;
        try {
          const op = kv.atomic();
          built = group.map((p) => p.build(op));
          ok = (await op.commit()).ok;
        } catch {
          ok = false;
        }
        if (ok) group.forEach((p, i) => p.done(built[i]));
        // One stale check fails the whole group: alone, each finds out whether it was its.
        else await Promise.all(group.map(commitAlone));
      }
    } finally {
      draining = false;
    }
  }

  async function publishAtomic(
    envelope: Envelope,
    targets: string[],
    result: PublishResult,
    publishOptions: PublishOptions & { plan?: FanoutPlanner } = {},
  ): Promise<AtomicPublish | undefined> {
    const id = envelope.metadata.id;
    const body = JSON.stringify(envelope);
    const parts = bodyParts(body);
    const event = eventRecord(envelope, result, parts.length, false, publishOptions.publishedBy);
    const collapsing = event.collapseKey !== undefined && event.durable &&
      (event.type === "NOTIFICATION" || event.type === "SYSTEM");
    const wide = collapsing || publishOptions.plan !== undefined;
    const cost = oneCommitCost(targets, { record: event, parts, wide });
    if (!cost) return undefined;
    const plans = publishOptions.plan ? await publishOptions.plan(targets, event) : undefined;
    const context = { collapsing, recentWindowMs: options.recentWindowMs };
    for (let retries = 0;; retries++) {
      const [first, ...seqs] = await getManyEntries<unknown>(kv, [
        keys.eventKey(id),
        ...targets.map((u) => keys.seqKey(u)),
      ]);
      if (first.value) return { created: false, event: first.value as EventRecord };
      const previous = collapsing
        ? await olderUnread(targets, event.collapseKey!, plans)
        : undefined;
      const now = Date.now();
      const build = (op: Deno.AtomicOperation) => {
        op.check({ key: keys.eventKey(id), versionstamp: null }).set(keys.eventKey(id), event);
        parts.forEach((part, i) => op.set(keys.eventBodyKey(id, i), part));
        return targets.map((user, i) =>
          addTargetItem(op, event, {
            user,
            seq: seqs[i] as Deno.KvEntryMaybe<number>,
            ...(plans?.[i] ? { plan: plans[i] } : {}),
            ...(previous?.[i] ? { previous: previous[i] } : {}),
          }, { ...context, now })
        );
      };
      const items = await commitGrouped({ id, users: targets, cost, build });
      if (items) {
        remember(id, envelope);
        return { created: true, event, batch: { event, items } };
      }
      // Another publish moved one of these users' seq, or the same id was just stored:
      // the next read tells which.
      if (retries >= MAX_RETRIES) throw new Error(`Cannot store event "${id}": keeps conflicting`);
      await pause(Math.random() * 5 * Math.min(retries + 1, 10));
    }
  }

  /** Per user, the unread, unexpired item that carries `collapseKey`, if any. */
  async function olderUnread(
    users: string[],
    collapseKey: string,
    plans: TargetPlan[] | undefined,
  ): Promise<(StreamItem | undefined)[]> {
    const marks = await getManyEntries<CollapseMark>(
      kv,
      users.map((u) => keys.collapseKey(u, collapseKey)),
    );
    const now = Date.now();
    const candidates = users.map((user, i) =>
      marks[i].value && !plans?.[i]?.quiet ? { user, seq: marks[i].value!.seq } : undefined
    );
    const present = candidates.filter((c) => c !== undefined);
    const [unread, items] = await Promise.all([
      getManyEntries<UnreadMark>(kv, present.map((c) => keys.unreadKey(c.user, c.seq))),
      getManyEntries<StreamItem>(kv, present.map((c) => keys.streamKey(c.user, c.seq))),
    ]);
    let j = 0;
    return candidates.map((c) => {
      if (!c) return undefined;
      const k = j++;
      const item = items[k].value;
      if (!unread[k].value || !item || item.readAt !== undefined) return undefined;
      if (item.exp !== undefined && item.exp <= now) return undefined;
      return item;
    });
  }

  async function runFanout(
    id: string,
    onBatch: (batch: FanoutBatch) => void,
    fanoutOptions: { plan?: FanoutPlanner } = {},
  ) {
    const event = (await kv.get<EventRecord>(keys.eventKey(id))).value;
    if (!event) return;
    const collapsing = event.collapseKey !== undefined && event.durable &&
      (event.type === "NOTIFICATION" || event.type === "SYSTEM");
    const wide = collapsing || fanoutOptions.plan !== undefined;
    const baseBatch = wide ? FANOUT_BATCH_WIDE : FANOUT_BATCH;
    // Long user ids make long keys: a batch stays under KV's total key size per commit,
    // with the same per-user bound as a one-commit publish.
    const perKey = id.length + (event.collapseKey?.length ?? 0) + 32;
    const batchOf = (ids: string[]) =>
      Math.max(
        1,
        Math.min(
          baseBatch,
          Math.floor(
            ONE_COMMIT_KEY_BYTES /
              ((wide ? 10 : 6) * (Math.max(...ids.map((u) => u.length)) + perKey)),
          ),
        ),
      );
    let batchSize = baseBatch;
    let planned: { at: string; plans: TargetPlan[] } | undefined;
    let targets: { index: number; ids: string[] } | undefined;
    let retries = 0;
    // The job as this runner last wrote it: a commit's versionstamp is that of every key
    // it sets, so the next batch checks it without reading it back. Unknown after a
    // conflict (another runner may have moved it), then read again.
    let known: Deno.KvEntryMaybe<Job> | undefined;
    // The next batch's seqs, read while the current batch commits (other users: their
    // reads do not wait for that commit). A stale read fails its commit's check, which
    // then retries from fresh reads like any conflict.
    let prefetched: { at: string; seqs: Promise<Deno.KvEntryMaybe<number>[]> } | undefined;
    while (true) {
      const jobEntry = known ?? await kv.get<Job>(keys.jobKey(id));
      known = undefined;
      const job = jobEntry.value;
      if (!job) return;
      if (targets?.index !== job.chunk) {
        const ids = (await kv.get<string[]>(keys.jobTargetsKey(id, job.chunk, job.targets))).value;
        if (!ids) throw new Error(`Fan-out of event "${id}" lost target chunk ${job.chunk}`);
        targets = { index: job.chunk, ids };
        batchSize = batchOf(ids);
      }
      const users = targets.ids.slice(job.offset, job.offset + batchSize);
      const at = `${job.chunk}:${job.offset}`;
      if (fanoutOptions.plan && planned?.at !== at) {
        planned = { at, plans: await fanoutOptions.plan(users, event) };
      }
      const plans = planned?.at === at ? planned.plans : undefined;
      const seqs = await (prefetched?.at === at ? prefetched.seqs : getManyEntries<number>(
        kv,
        users.map((u) => keys.seqKey(u)),
      ));
      prefetched = undefined;
      // The older unread item each user has under the same collapse key, if any.
      const previous = collapsing ? await olderUnread(users, event.collapseKey!, plans) : undefined;
      const now = Date.now();
      const op = kv.atomic().check(jobEntry);
      const items: FanoutBatch["items"] = [];
      const context = { now, collapsing, recentWindowMs: options.recentWindowMs };
      users.forEach((user, i) => {
        items.push(
          addTargetItem(op, event, {
            user,
            seq: seqs[i],
            ...(plans?.[i] ? { plan: plans[i] } : {}),
            ...(previous?.[i] ? { previous: previous[i] } : {}),
          }, context),
        );
      });
      let next = { ...job, offset: job.offset + users.length };
      if (next.offset >= targets.ids.length) next = { ...next, chunk: job.chunk + 1, offset: 0 };
      const done = next.chunk >= job.chunks;
      if (done) {
        op.delete(keys.jobKey(id));
        for (let i = 0; i < job.chunks; i++) op.delete(keys.jobTargetsKey(id, i, job.targets));
        op.set(keys.eventKey(id), { ...event, fanningOut: false });
      } else {
        op.set(keys.jobKey(id), next);
        // Without a planner or collapse reads to interleave, read ahead (same chunk only:
        // the next chunk's ids are read once this one is done).
        if (!fanoutOptions.plan && !collapsing && next.chunk === job.chunk) {
          const ahead = targets.ids.slice(next.offset, next.offset + batchSize);
          const seqsAhead = getManyEntries<number>(kv, ahead.map((u) => keys.seqKey(u)));
          // Settled even if never used (a conflict discards it).
          seqsAhead.catch(() => {});
          prefetched = { at: `${next.chunk}:${next.offset}`, seqs: seqsAhead };
        }
      }
      const res = await op.commit();
      if (!res.ok) {
        prefetched = undefined;
        // Another publish moved one of these users' seq, or another runner moved the job.
        if (++retries > MAX_RETRIES) throw new Error(`Fan-out of event "${id}" keeps conflicting`);
        await pause(Math.random() * 5 * Math.min(retries, 10));
        continue;
      }
      retries = 0;
      if (!done) known = { key: keys.jobKey(id), value: next, versionstamp: res.versionstamp };
      onBatch({ event: done ? { ...event, fanningOut: false } : event, items });
      if (done) return;
    }
  }

  async function unfinishedFanouts(): Promise<string[]> {
    const ids: string[] = [];
    for await (const entry of kv.list<Job>({ prefix: keys.jobPrefix() })) ids.push(entry.value.id);
    return ids;
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
    for await (const entry of kv.list<TargetRecord>({ prefix: keys.targetPrefix(id) })) {
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
      delivered,
      acked,
      failed,
      acked_all: event.ackRequired && !event.fanningOut && acked === targeted,
      pending_users: pendingUsers,
      unknown_targets: event.result.unknown_targets,
      unknown_count: event.result.unknown_count ?? event.result.unknown_targets.length,
    };
  }

  async function lastSeq(user: string): Promise<number> {
    return (await kv.get<number>(keys.seqKey(user))).value ?? 0;
  }

  async function readStream(
    user: string,
    after: number,
    opts: { limit: number; windowMs: number; now: number },
  ): Promise<StreamRead> {
    const last = await lastSeq(user);
    if (after > last) return { items: [], last, complete: false };
    const items: StreamItem[] = [];
    let expected = after + 1;
    let complete = true;
    const iter = kv.list<StreamItem>({
      start: keys.streamKey(user, after + 1),
      end: keys.streamKey(user, last + 1),
    }, { batchSize: Math.min(opts.limit + 1, 500) });
    for await (const entry of iter) {
      const item = entry.value;
      if (item.seq !== expected) complete = false;
      expected = item.seq + 1;
      if (item.exp !== undefined && item.exp <= opts.now) continue;
      if (isHidden(item)) continue;
      if (!item.durable && item.at + opts.windowMs < opts.now) {
        complete = false;
        continue;
      }
      if (items.length >= opts.limit) {
        complete = false;
        break;
      }
      items.push(item);
    }
    if (complete && expected !== last + 1) complete = false;
    return { items, last, complete };
  }

  async function listPending(user: string): Promise<PendingAck[]> {
    const out: PendingAck[] = [];
    for await (const e of kv.list<PendingAck>({ prefix: keys.pendingPrefix(user) })) {
      out.push(e.value);
    }
    return out;
  }

  async function savePending(user: string, pending: PendingAck[]) {
    for (const part of chunk(pending, GET_MANY)) {
      for (let attempt = 0; attempt < 5; attempt++) {
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
    const seq = (await kv.get<number>(keys.byIdKey(user, id))).value;
    if (seq === null) return false;
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

  async function markDelivered(entries: { id: string; user: string }[], now: number) {
    // Up to ninety targets per commit (one check each, under KV's 100), read with
    // parallel getMany calls: a 10,000-user fan-out is recorded in ~110 commits, not 1,000,
    // so recording competes less with the fan-out's own commits. A commit that loses a
    // race falls back to the one-by-one transition, which re-reads and retries.
    const unique = [...new Map(entries.map((e) => [`${e.id}\u0000${e.user}`, e])).values()];
    for (const part of chunk(unique, RECORD_BATCH)) {
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

  async function withEnvelopes(items: StreamItem[]) {
    const out: InboxPage["items"] = [];
    for (const item of items) {
      const envelope = await getEnvelope(item.id);
      if (envelope) out.push({ ...item, envelope });
    }
    return out;
  }

  async function listInbox(
    user: string,
    opts: { after?: number; limit: number; unreadOnly: boolean; now: number },
  ): Promise<InboxPage> {
    const ascending = opts.after !== undefined;
    const found: StreamItem[] = [];
    let more = false;
    const live = (item: StreamItem) => item.exp === undefined || item.exp > opts.now;
    if (opts.unreadOnly) {
      const selector = ascending
        ? { prefix: keys.unreadPrefix(user), start: keys.unreadKey(user, opts.after! + 1) }
        : { prefix: keys.unreadPrefix(user) };
      const seqs: number[] = [];
      for await (const e of kv.list<UnreadMark>(selector, { reverse: !ascending })) {
        if (e.value.exp !== undefined && e.value.exp <= opts.now) continue;
        if (seqs.length >= opts.limit) {
          more = true;
          break;
        }
        seqs.push(e.key[2] as number);
      }
      const entries = await getManyEntries<StreamItem>(
        kv,
        seqs.map((s) => keys.streamKey(user, s)),
      );
      for (const e of entries) if (e.value) found.push(e.value);
    } else {
      const selector = ascending
        ? { prefix: keys.streamPrefix(user), start: keys.streamKey(user, opts.after! + 1) }
        : { prefix: keys.streamPrefix(user) };
      for await (const e of kv.list<StreamItem>(selector, { reverse: !ascending })) {
        if (!isInboxItem(e.value) || !live(e.value)) continue;
        if (found.length >= opts.limit) {
          more = true;
          break;
        }
        found.push(e.value);
      }
    }
    const items = await withEnvelopes(found);
    const next = more && found.length > 0 ? found[found.length - 1].seq : undefined;
    return { items, unread: await unreadCount(user, opts.now), ...(next ? { next } : {}) };
  }

  async function unreadCount(user: string, now: number): Promise<number> {
    let count = 0;
    for await (const e of kv.list<UnreadMark>({ prefix: keys.unreadPrefix(user) })) {
      if (e.value.exp === undefined || e.value.exp > now) count++;
    }
    return count;
  }

  async function readSeqs(user: string, seqs: number[], now: number) {
    for (const part of chunk(seqs, GET_MANY)) {
      for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
        const items = await kv.getMany<StreamItem[]>(part.map((s) => keys.streamKey(user, s)));
        const op = kv.atomic();
        items.forEach((e, i) => {
          op.delete(keys.unreadKey(user, part[i]));
          if (e.value && e.value.readAt === undefined) {
            op.check(e).set(e.key, { ...e.value, readAt: now });
          }
        });
        if ((await op.commit()).ok) break;
      }
    }
  }

  async function markRead(user: string, id: string, now: number): Promise<boolean> {
    const seq = (await kv.get<number>(keys.byIdKey(user, id))).value;
    if (seq === null) return false;
    const item = (await kv.get<StreamItem>(keys.streamKey(user, seq))).value;
    if (!item || !isInboxItem(item)) return false;
    await readSeqs(user, [seq], now);
    return true;
  }

  async function markAllRead(user: string, now: number): Promise<number> {
    const seqs: number[] = [];
    for await (const e of kv.list({ prefix: keys.unreadPrefix(user) })) {
      seqs.push(e.key[2] as number);
    }
    await readSeqs(user, seqs, now);
    return seqs.length;
  }

  async function putTicket(id: string, record: TicketRecord) {
    await kv.set(keys.ticketKey(id), record, {
      expireIn: Math.max(1000, record.expiresAt - Date.now()) + 60_000,
    });
  }

  async function takeTicket(id: string): Promise<TicketRecord | undefined> {
    const entry = await kv.get<TicketRecord>(keys.ticketKey(id));
    if (!entry.value) return undefined;
    const res = await kv.atomic().check(entry).delete(keys.ticketKey(id)).commit();
    return res.ok ? entry.value : undefined;
  }

  async function ping(): Promise<boolean> {
    await kv.get(["ping"]);
    return true;
  }

  async function findItem(user: string, id: string): Promise<StreamItem | undefined> {
    const seq = (await kv.get<number>(keys.byIdKey(user, id))).value;
    if (seq === null) return undefined;
    return (await kv.get<StreamItem>(keys.streamKey(user, seq))).value ?? undefined;
  }

  /** Deletes keys in commits of a few hundred (KV takes at most 1000 mutations each). */
  async function deleteAll(list: Deno.KvKey[]) {
    for (const part of chunk(list, 200)) {
      const op = kv.atomic();
      for (const key of part) op.delete(key);
      const res = await op.commit();
      if (!res.ok) throw new Error("Cannot erase keys");
    }
  }

  async function keysOf(prefix: Deno.KvKey): Promise<Deno.KvKey[]> {
    const out: Deno.KvKey[] = [];
    for await (const e of kv.list({ prefix }, { batchSize: 500 })) out.push(e.key);
    return out;
  }

  async function eraseUser(user: string): Promise<Erased> {
    const stream: Deno.KvKey[] = [];
    const targets: Deno.KvKey[] = [];
    for await (const e of kv.list<StreamItem>({ prefix: keys.streamPrefix(user) })) {
      stream.push(e.key);
      targets.push(keys.targetKey(e.value.id, user));
    }
    const pending = await keysOf(keys.pendingPrefix(user));
    const rest = [
      ...await keysOf(keys.byIdPrefix(user)),
      ...await keysOf(keys.unreadPrefix(user)),
      ...await keysOf(keys.collapsePrefix(user)),
      ...await keysOf(keys.mailDigestUserPrefix(user)),
      ...await keysOf(keys.mailDigestDuePrefix(user)),
    ];
    // The seq goes last: until it is gone, a publish racing the erasure still checks it.
    await deleteAll([...pending, ...targets, ...rest, ...stream, keys.seqKey(user)]);
    return { streamItems: stream.length, pendingAcks: pending.length };
  }

  return {
    createEvent,
    publishAtomic,
    runFanout,
    unfinishedFanouts,
    getEvent: async (id) => (await kv.get<EventRecord>(keys.eventKey(id))).value ?? undefined,
    getEnvelope,
    getStatus,
    lastSeq,
    readStream,
    listPending,
    savePending,
    ack,
    deadLetter,
    listDeadLetters,
    markDelivered,
    listInbox,
    unreadCount,
    markRead,
    markAllRead,
    putTicket,
    takeTicket,
    findItem,
    eraseUser,
    ping,
    close: () => kv.close(),
  };
}
