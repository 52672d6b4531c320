/**
 * The Deno KV adapter of the store port.
 *
 * Every multi-key write is one `kv.atomic()` with `check()`s; a commit that loses a race
 * is retried from a fresh read, never ignored.
 */

import type { Envelope } from "../schemas/envelope.ts";
import { isDurable, needsAck } from "../schemas/envelope.ts";
import * as keys from "./keys.ts";
import type {
  DeadLetter,
  Erased,
  EventRecord,
  EventStatus,
  FanoutBatch,
  FanoutPlanner,
  InboxPage,
  MailTask,
  PendingAck,
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
/** getMany reads at most 10 keys. */
const GET_MANY = 10;
const ENVELOPE_CACHE = 5_000;
const MAX_RETRIES = 50;

interface Job {
  id: string;
  chunks: number;
  chunk: number;
  offset: number;
}

interface UnreadMark {
  exp?: number;
}

/** Options of {@linkcode createKvStore}. */
export interface KvStoreOptions {
  /** How long items that are not durable stay available for resume. */
  recentWindowMs: number;
}

function chunk<T>(list: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
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

async function getMany<T>(kv: Deno.Kv, list: Deno.KvKey[]): Promise<Deno.KvEntryMaybe<T>[]> {
  const parts = await Promise.all(chunk(list, GET_MANY).map((part) => kv.getMany<T[]>(part)));
  return parts.flat() as Deno.KvEntryMaybe<T>[];
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
    const parts = await getMany<string>(
      kv,
      Array.from({ length: event.chunks }, (_, i) => keys.eventBodyKey(id, i)),
    );
    if (parts.some((p) => p.value === null)) return undefined;
    const envelope = JSON.parse(parts.map((p) => p.value).join("")) as Envelope;
    remember(id, envelope);
    return envelope;
  }

  async function writeTargets(id: string, targets: string[]): Promise<number> {
    const chunks = chunkByChars(targets, TARGET_CHUNK_CHARS);
    for (const group of chunk(chunks.map((c, i) => [i, c] as const), 20)) {
      const op = kv.atomic();
      for (const [i, ids] of group) op.set(keys.jobTargetsKey(id, i), ids);
      const res = await op.commit();
      if (!res.ok) throw new Error(`Cannot store the targets of event "${id}"`);
    }
    return chunks.length;
  }

  async function createEvent(envelope: Envelope, targets: string[], result: PublishResult) {
    const id = envelope.metadata.id;
    const existing = await kv.get<EventRecord>(keys.eventKey(id));
    if (existing.value) return { created: false, event: existing.value };

    const body = JSON.stringify(envelope);
    const bodyChunks: string[] = [];
    for (let i = 0; i < body.length; i += BODY_CHUNK_CHARS) {
      bodyChunks.push(body.slice(i, i + BODY_CHUNK_CHARS));
    }
    const expiration = envelope.metadata.expiration;
    const event: EventRecord = {
      id,
      type: envelope.metadata.type,
      acceptedAt: Date.parse(result.accepted_at),
      ...(expiration ? { expiresAt: Date.parse(expiration) } : {}),
      durable: isDurable(envelope),
      ackRequired: needsAck(envelope),
      retry: envelope.routing.retry,
      chunks: bodyChunks.length,
      result,
      fanningOut: targets.length > 0,
      ...(envelope.metadata.collapse_key ? { collapseKey: envelope.metadata.collapse_key } : {}),
    };
    // Target chunks go first, in their own commits: they may be larger than one atomic
    // operation holds, and without the event record below they are never read.
    const targetChunks = targets.length > 0 ? await writeTargets(id, targets) : 0;
    const op = kv.atomic().check({ key: keys.eventKey(id), versionstamp: null })
      .set(keys.eventKey(id), event);
    bodyChunks.forEach((part, i) => op.set(keys.eventBodyKey(id, i), part));
    if (targets.length > 0) {
      op.set(keys.jobKey(id), { id, chunks: targetChunks, chunk: 0, offset: 0 } satisfies Job);
    }
    const res = await op.commit();
    if (!res.ok) {
      const first = await kv.get<EventRecord>(keys.eventKey(id));
      if (first.value) return { created: false, event: first.value };
      throw new Error(`Cannot store event "${id}"`);
    }
    remember(id, envelope);
    return { created: true, event };
  }

  /** Per user, the unread, unexpired item that carries `collapseKey`, if any. */
  async function olderUnread(
    users: string[],
    collapseKey: string,
    plans: TargetPlan[] | undefined,
  ): Promise<(StreamItem | undefined)[]> {
    const marks = await getMany<CollapseMark>(
      kv,
      users.map((u) => keys.collapseKey(u, collapseKey)),
    );
    const now = Date.now();
    const candidates = users.map((user, i) =>
      marks[i].value && !plans?.[i]?.quiet ? { user, seq: marks[i].value!.seq } : undefined
    );
    const present = candidates.filter((c) => c !== undefined);
    const [unread, items] = await Promise.all([
      getMany<UnreadMark>(kv, present.map((c) => keys.unreadKey(c.user, c.seq))),
      getMany<StreamItem>(kv, present.map((c) => keys.streamKey(c.user, c.seq))),
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
    const batchSize = collapsing || fanoutOptions.plan ? FANOUT_BATCH_WIDE : FANOUT_BATCH;
    let planned: { at: string; plans: TargetPlan[] } | undefined;
    let targets: { index: number; ids: string[] } | undefined;
    let retries = 0;
    while (true) {
      const jobEntry = await kv.get<Job>(keys.jobKey(id));
      const job = jobEntry.value;
      if (!job) return;
      if (targets?.index !== job.chunk) {
        const ids = (await kv.get<string[]>(keys.jobTargetsKey(id, job.chunk))).value;
        if (!ids) throw new Error(`Fan-out of event "${id}" lost target chunk ${job.chunk}`);
        targets = { index: job.chunk, ids };
      }
      const users = targets.ids.slice(job.offset, job.offset + batchSize);
      const at = `${job.chunk}:${job.offset}`;
      if (fanoutOptions.plan && planned?.at !== at) {
        planned = { at, plans: await fanoutOptions.plan(users, event) };
      }
      const plans = planned?.at === at ? planned.plans : undefined;
      const seqs = await getMany<number>(kv, users.map((u) => keys.seqKey(u)));
      // The older unread item each user has under the same collapse key, if any.
      const previous = collapsing ? await olderUnread(users, event.collapseKey!, plans) : undefined;
      const now = Date.now();
      const op = kv.atomic().check(jobEntry);
      const items: FanoutBatch["items"] = [];
      users.forEach((user, i) => {
        const seq = (seqs[i].value ?? 0) + 1;
        const plan = plans?.[i];
        // An item that needs an ack is shown whatever the preferences say.
        const quiet = plan?.quiet === true && !event.ackRequired;
        op.check(seqs[i]).set(keys.seqKey(user), seq);
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
          event.durable ? undefined : { expireIn: options.recentWindowMs + 60_000 },
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
          const old = previous![i];
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
        items.push({
          user,
          item,
          ...(pending ? { pending } : {}),
          ...(replaces ? { replaces } : {}),
        });
      });
      let next = { ...job, offset: job.offset + users.length };
      if (next.offset >= targets.ids.length) next = { ...next, chunk: job.chunk + 1, offset: 0 };
      const done = next.chunk >= job.chunks;
      if (done) {
        op.delete(keys.jobKey(id));
        for (let i = 0; i < job.chunks; i++) op.delete(keys.jobTargetsKey(id, i));
        op.set(keys.eventKey(id), { ...event, fanningOut: false });
      } else {
        op.set(keys.jobKey(id), next);
      }
      const res = await op.commit();
      if (!res.ok) {
        // Another publish moved one of these users' seq, or another runner moved the job.
        if (++retries > MAX_RETRIES) throw new Error(`Fan-out of event "${id}" keeps conflicting`);
        await pause(Math.random() * 5 * Math.min(retries, 10));
        continue;
      }
      retries = 0;
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
    // Ten targets per read and per commit; a commit that loses a race falls back to the
    // one-by-one transition, which re-reads and retries.
    const unique = [...new Map(entries.map((e) => [`${e.id}\u0000${e.user}`, e])).values()];
    for (const part of chunk(unique, GET_MANY)) {
      const current = await kv.getMany<TargetRecord[]>(
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
      const entries = await getMany<StreamItem>(kv, seqs.map((s) => keys.streamKey(user, s)));
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
