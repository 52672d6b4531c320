/**
 * The batch commit of the Deno KV conversation store: messages and read positions, edits,
 * deletes, membership and mutes, and the resumption of a fan-out a crash interrupted.
 *
 * A batch is written with its members' stream items in one atomic commit when KV's limits
 * allow (100 checks, 1000 mutations, 800 KB); a larger fan-out records a job in that first
 * commit and writes the rest in further commits, so a crash resumes it. Every commit checks
 * the conversation's head versionstamp: a second writer is detected, never interleaved.
 * The fan-out (`kv_conversation_fanout.ts`) lets batches of different conversations share
 * KV commits; membership and mutes, which write no stream item, are
 * `kv_conversation_membership.ts`.
 */

import * as keys from "../store/keys.ts";
import { kvU64 } from "../store/kv_u64.ts";
import type {
  Batch,
  CommitInput,
  CommitOutput,
  ConversationStore,
  FanoutEntry,
  MessageRecord,
  OpResult,
  SendInput,
} from "./conversation_store.ts";
import { type Accept, createFanOut, StaleBatchError } from "./kv_conversation_fanout.ts";
import { keyBytesOf } from "../store/kv/limits.ts";
import { commitMembership } from "./kv_conversation_membership.ts";
import {
  countUnread,
  deliveries,
  headOf,
  messageBytes,
  unreadOf,
} from "./kv_conversation_records.ts";
import { getManyEntries } from "../store/kv_reads.ts";
import type { SeqSource } from "../store/store.ts";
import { countsUnread, own, PREVIEW_CHARS, receives, setOwn } from "./rules.ts";

type State = CommitInput["state"];

/**
 * Sends of one batch found by their dedup key at most, checked absent in the commit
 * instead of read first (KV allows 100 checks per commit; a batch holds 32 sends).
 */
const CHECKED_SENDS = 40;

/** The stored seq of each resent send, by sender and dedup key, and those messages. */
interface Resent {
  seqs: Map<string, number>;
  messages: Map<number, MessageRecord>;
}

/**
 * What finds a send again: its `client_id`, or the random resend key a forwarding node
 * gave it (under a prefix of its own: a client's id does not meet one by chance).
 */
function dedupKeyOf(send: SendInput): string | undefined {
  if (send.clientId !== undefined) return send.clientId;
  return send.resendKey !== undefined ? `\u0000resend:${send.resendKey}` : undefined;
}

/** Creates the commit and resume ports of the conversation store on an open Deno KV handle. */
export function createKvConversationCommit(
  kv: Deno.Kv,
): Pick<ConversationStore, "commit" | "resume"> {
  const fanOut = createFanOut(kv);

  /**
   * Resends: a (sender, client_id) already stored answers with the stored message; so
   * does a forwarding node's retry of a send without one (by its resend key).
   */
  async function resentOf(
    id: string,
    batch: Extract<Batch, { kind: "messages" }>,
  ): Promise<Resent> {
    const withClient = batch.sends.filter((s) => dedupKeyOf(s) !== undefined);
    const known = await getManyEntries<number>(
      kv,
      withClient.map((s) => keys.messageClientKey(id, s.from, dedupKeyOf(s)!)),
    );
    const seqs = new Map<string, number>();
    withClient.forEach((s, i) => {
      const seq = known[i].value;
      if (seq !== null) seqs.set(`${s.from}\u0000${dedupKeyOf(s)}`, seq);
    });
    const messages = new Map(
      (await getManyEntries<MessageRecord>(
        kv,
        [...seqs.values()].map((s) => keys.messageKey(id, s)),
      ))
        .filter((e) => e.value).map((e) => [e.value!.seq, e.value!]),
    );
    return { seqs, messages };
  }

  /**
   * Commits a batch of sends and reads. Resends are rare: the batch first goes without
   * reading its dedup keys, each checked absent in its commit; only when a check fails (or
   * the batch holds more keys than {@linkcode CHECKED_SENDS}) is it planned from the stored
   * sends.
   */
  async function commitMessages(
    state: State,
    batch: Extract<Batch, { kind: "messages" }>,
    seqs: SeqSource | undefined,
  ): Promise<CommitOutput> {
    const keyed = batch.sends.filter((s) => dedupKeyOf(s) !== undefined).length;
    if (keyed <= CHECKED_SENDS) {
      try {
        return await commitSends(state, batch, seqs, undefined);
      } catch (error) {
        if (!(error instanceof StaleBatchError)) throw error;
      }
    }
    return await commitSends(state, batch, seqs, await resentOf(state.info.id, batch));
  }

  /**
   * Plans and commits a batch of sends and reads; `resent` is what is stored of its
   * resends, or `undefined` to check instead that none is.
   */
  async function commitSends(
    state: State,
    batch: Extract<Batch, { kind: "messages" }>,
    seqs: SeqSource | undefined,
    resent: Resent | undefined,
  ): Promise<CommitOutput> {
    const id = state.info.id;
    const results: Record<string, OpResult> = {};
    const members = { ...state.members };
    const knownSeq = resent?.seqs ?? new Map<string, number>();
    const stored = resent?.messages ?? new Map<number, MessageRecord>();
    // The key each new message is found again by.
    const dedupKeys = new Map<MessageRecord, string>();

    const now = Date.now();
    const fresh: MessageRecord[] = [];
    const inBatch = new Map<string, MessageRecord>();
    let seq = state.head.seq;
    for (const send of batch.sends) {
      const dedupKey = dedupKeyOf(send);
      const clientKey = dedupKey !== undefined ? `${send.from}\u0000${dedupKey}` : "";
      const earlier = clientKey
        ? (stored.get(knownSeq.get(clientKey) ?? -1) ?? inBatch.get(clientKey))
        : undefined;
      if (earlier) {
        results[send.requestId] = { ok: true, message: earlier, created: false };
        continue;
      }
      const message: MessageRecord = {
        id: crypto.randomUUID(),
        seq: ++seq,
        from: send.from,
        text: send.text,
        at: now,
        ...(send.clientId !== undefined ? { client_id: send.clientId } : {}),
        ...(send.attachments?.length ? { attachments: send.attachments } : {}),
      };
      fresh.push(message);
      if (dedupKey !== undefined) dedupKeys.set(message, dedupKey);
      if (clientKey) inBatch.set(clientKey, message);
      results[send.requestId] = { ok: true, message, created: true };
    }

    // Reads move forward only; what stays unread is counted from the stored messages.
    const receipts: { user: string; seq: number }[] = [];
    const unreadSet = new Map<string, number>();
    const current = await unreadOf(kv, id, [...new Set(batch.reads.map((r) => r.user))]);
    for (const read of batch.reads) {
      const member = own(members, read.user);
      const target = Math.min(read.seq, state.head.seq);
      if (!member || target <= member.read) {
        results[read.requestId] = {
          ok: true,
          read: member?.read ?? 0,
          unread: unreadSet.get(read.user) ?? current.get(read.user) ?? 0,
        };
        continue;
      }
      const moved = { ...member, read: target };
      setOwn(members, read.user, moved);
      const unread = await countUnread(
        kv,
        id,
        read.user,
        moved,
        state.head.seq,
        own(state.blocks, read.user) ?? [],
      );
      unreadSet.set(read.user, unread);
      const previous = receipts.findIndex((r) => r.user === read.user);
      if (previous >= 0) receipts.splice(previous, 1);
      receipts.push({ user: read.user, seq: target });
      results[read.requestId] = { ok: true, read: target, unread };
    }
    // Sending a message means having read the conversation up to it.
    for (const m of fresh) {
      setOwn(members, m.from, { ...own(members, m.from)!, read: m.seq });
      unreadSet.set(m.from, 0);
    }

    if (fresh.length === 0 && unreadSet.size === 0) {
      return {
        head: state.head,
        headVersion: state.headVersion,
        members: state.members,
        info: state.info,
        blocks: {},
        results,
        deliveries: [],
        receipts: [],
      };
    }

    const head = headOf(state.head, fresh.at(-1), now);
    const changed = [...unreadSet.keys()];
    // Without reading them first, the dedup keys must still be absent when they are written.
    const checked = resent ? [] : fresh.flatMap((m) => {
      const dedupKey = dedupKeys.get(m);
      return dedupKey === undefined ? [] : [keys.messageClientKey(id, m.from, dedupKey)];
    });
    const accept: Accept = {
      write(op) {
        for (const key of checked) op.check({ key, versionstamp: null });
        for (const m of fresh) {
          op.set(keys.messageKey(id, m.seq), m);
          const dedupKey = dedupKeys.get(m);
          if (dedupKey !== undefined) op.set(keys.messageClientKey(id, m.from, dedupKey), m.seq);
        }
        op.set(keys.conversationHeadKey(id), head);
        for (const user of changed) {
          op.set(keys.conversationMemberKey(id, user), own(members, user)!);
          op.set(
            keys.conversationUnreadKey(id, user),
            kvU64(BigInt(unreadSet.get(user)!)),
          );
        }
      },
      checks: checked.length,
      stale: async () =>
        (await getManyEntries<number>(kv, checked)).some((e) => e.versionstamp !== null),
      mutations: fresh.length * 2 + 1 + changed.length * 2,
      keyBytes: keyBytesOf(id) +
        fresh.reduce(
          (n, m) =>
            n + keyBytesOf(id) + (resent ? 1 : 2) * keyBytesOf(id, m.from, dedupKeys.get(m) ?? ""),
          0,
        ) +
        changed.reduce((n, user) => n + 2 * keyBytesOf(id, user), 0),
      bytes: fresh.reduce((n, m) => n + messageBytes(m), 0) + changed.length * 300,
    };
    const entries: FanoutEntry[] = fresh.map((m) => ({
      seq: m.seq,
      itemId: m.id,
      op: "new",
      from: m.from,
    }));
    const written = await fanOut(id, { ...state, members }, entries, {
      offset: 0,
      accept,
      hasJob: false,
      seqs,
    });
    return {
      head,
      headVersion: written.headVersion,
      members,
      info: state.info,
      blocks: {},
      results,
      deliveries: deliveries(fresh, entries, written.items),
      receipts,
    };
  }

  async function commitChange(
    state: State,
    batch: Extract<Batch, { kind: "edit" | "delete" }>,
    seqs: SeqSource | undefined,
  ): Promise<CommitOutput> {
    const id = state.info.id;
    const unchanged = (result: OpResult): CommitOutput => ({
      head: state.head,
      headVersion: state.headVersion,
      members: state.members,
      info: state.info,
      blocks: {},
      results: { [batch.requestId]: result },
      deliveries: [],
      receipts: [],
    });
    const message = (await kv.get<MessageRecord>(keys.messageKey(id, batch.seq))).value;
    if (!message || message.seq < (own(state.members, batch.by)?.since ?? Infinity)) {
      return unchanged({
        ok: false,
        error: { code: "not_found", message: `No message ${batch.seq} in conversation "${id}"` },
      });
    }
    if (message.deleted) {
      return unchanged(
        batch.kind === "delete" ? { ok: true, message, created: false } : {
          ok: false,
          error: { code: "conflict", message: `Message ${batch.seq} was deleted` },
        },
      );
    }
    const author = message.from === batch.by;
    if (!author && !(batch.kind === "delete" && batch.asOwner)) {
      return unchanged({
        ok: false,
        error: {
          code: "forbidden",
          message: batch.kind === "edit"
            ? "Only the author can edit a message"
            : "Only the author or an owner can delete a message",
        },
      });
    }
    const now = Date.now();
    const { attachments: _, ...rest } = message;
    const record: MessageRecord = batch.kind === "edit"
      ? { ...message, text: batch.text, editedAt: now }
      : { ...rest, text: "", deleted: true, editedAt: now };
    const head = batch.seq === state.head.seq
      ? { ...state.head, preview: record.text.slice(0, PREVIEW_CHARS) }
      : state.head;

    // A deleted message no longer counts as unread for those who had not read it.
    const decrement = batch.kind === "delete"
      ? Object.entries(state.members).filter(([user, m]) =>
        countsUnread(user, m, { ...message, op: "new" }) &&
        receives(user, m, state.blocks, message)
      ).map(([user]) => user)
      : [];
    const unread = await unreadOf(kv, id, decrement);
    const accept: Accept = {
      write(op) {
        op.set(keys.messageKey(id, batch.seq), record);
        op.set(keys.conversationHeadKey(id), head);
        for (const user of decrement) {
          op.set(
            keys.conversationUnreadKey(id, user),
            kvU64(BigInt(Math.max(0, unread.get(user)! - 1))),
          );
        }
      },
      mutations: 2 + decrement.length,
      keyBytes: 2 * keyBytesOf(id) + decrement.reduce((n, user) => n + keyBytesOf(id, user), 0),
      bytes: messageBytes(record) + decrement.length * 120,
    };
    const entries: FanoutEntry[] = [{
      seq: batch.seq,
      itemId: crypto.randomUUID(),
      op: batch.kind,
      from: message.from,
    }];
    const written = await fanOut(id, state, entries, { offset: 0, accept, hasJob: false, seqs });
    return {
      head,
      headVersion: written.headVersion,
      members: state.members,
      info: state.info,
      blocks: {},
      results: { [batch.requestId]: { ok: true, message: record, created: false } },
      deliveries: deliveries([record], entries, written.items),
      receipts: [],
    };
  }

  return {
    commit({ state, batch, seqs }) {
      switch (batch.kind) {
        case "messages":
          return commitMessages(state, batch, seqs);
        case "edit":
        case "delete":
          return commitChange(state, batch, seqs);
        case "members":
        case "mute":
          return commitMembership(kv, { state, batch });
      }
    },

    async resume(state, options) {
      const id = state.info.id;
      const job = state.job;
      const base: CommitOutput = {
        head: state.head,
        headVersion: state.headVersion,
        members: state.members,
        info: state.info,
        blocks: {},
        results: {},
        deliveries: [],
        receipts: [],
      };
      if (!job) return base;
      const written = await fanOut(id, state, job.entries, {
        offset: job.offset,
        hasJob: true,
        seqs: options?.seqs,
      });
      const records = await getManyEntries<MessageRecord>(
        kv,
        job.entries.map((e) => keys.messageKey(id, e.seq)),
      );
      return {
        ...base,
        deliveries: deliveries(
          records.flatMap((e) => e.value ? [e.value] : []),
          job.entries,
          written.items,
        ),
      };
    },
  };
}
