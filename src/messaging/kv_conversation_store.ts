/**
 * The Deno KV adapter of the conversation store.
 *
 * A batch is written with its members' stream items in one atomic commit when KV's limits
 * allow (100 checks, 1000 mutations, 800 KB); a larger fan-out records a job in that first
 * commit and writes the rest in further commits, so a crash resumes it. Every commit checks
 * the conversation's head versionstamp: a second writer is detected, never interleaved.
 * The fan-out (`kv_conversation_fanout.ts`) lets batches of different conversations share
 * KV commits.
 */

import * as keys from "../store/keys.ts";
import type {
  Batch,
  CommitInput,
  CommitOutput,
  ConversationInfo,
  ConversationListing,
  ConversationState,
  ConversationStore,
  Delivery,
  FanoutEntry,
  FanoutJob,
  Head,
  HistoryPage,
  MemberState,
  MessageRecord,
  OpResult,
} from "./conversation_store.ts";
import { type Accept, createFanOut, keyBytesOf, type Written } from "./kv_conversation_fanout.ts";
import { chunk, GET_MANY, getManyEntries } from "../store/kv_reads.ts";
import { HeadConflictError } from "./conversation_store.ts";
import type { SeqSource } from "../store/store.ts";
import { countsUnread, isMemberState, own, PREVIEW_CHARS, receives, setOwn } from "./rules.ts";

/** Messages looked at, at most, to count what is unread after a read position. */
const UNREAD_SCAN = 1000;

type State = CommitInput["state"];

async function listValues<T>(kv: Deno.Kv, prefix: Deno.KvKey): Promise<Deno.KvEntry<T>[]> {
  const out: Deno.KvEntry<T>[] = [];
  for await (const entry of kv.list<T>({ prefix })) out.push(entry);
  return out;
}

/** A rough size of a message as stored, for the commit byte budget. */
function messageBytes(m: MessageRecord): number {
  let size = 300 + m.text.length * 2 + (m.client_id?.length ?? 0) * 2;
  for (const a of m.attachments ?? []) size += (a.url.length + a.name.length) * 2 + 40;
  return size;
}

function headOf(previous: Head, last: MessageRecord | undefined, now: number): Head {
  if (!last) return previous;
  return { seq: last.seq, at: now, from: last.from, preview: last.text.slice(0, PREVIEW_CHARS) };
}

/** Creates the conversation store on an open Deno KV handle. */
export function createKvConversationStore(kv: Deno.Kv): ConversationStore {
  const fanOut = createFanOut(kv);

  function deliveries(
    records: MessageRecord[],
    entries: FanoutEntry[],
    items: Written[],
  ): Delivery[] {
    const byItem = new Map<string, Delivery>();
    const out: Delivery[] = [];
    entries.forEach((entry) => {
      const message = records.find((m) => m.seq === entry.seq);
      if (!message) return;
      const delivery: Delivery = { message, op: entry.op, items: [] };
      byItem.set(entry.itemId, delivery);
      out.push(delivery);
    });
    for (const written of items) byItem.get(written.item.id)?.items.push(written);
    return out;
  }

  async function unreadOf(id: string, users: string[]): Promise<Map<string, number>> {
    const entries = await getManyEntries<Deno.KvU64>(
      kv,
      users.map((u) => keys.conversationUnreadKey(id, u)),
    );
    return new Map(users.map((u, i) => [u, Number(entries[i].value?.value ?? 0n)]));
  }

  /** Counts the messages after `member.read` up to `headSeq` that `user` has not read. */
  async function countUnread(
    id: string,
    user: string,
    member: MemberState,
    headSeq: number,
    blocked: readonly string[],
  ): Promise<number> {
    if (member.read >= headSeq) return 0;
    let count = 0;
    const iter = kv.list<MessageRecord>({
      start: keys.messageKey(id, Math.max(member.read, member.since - 1) + 1),
      end: keys.messageKey(id, headSeq + 1),
    }, { limit: UNREAD_SCAN });
    for await (const { value: m } of iter) {
      if (!m.deleted && m.from !== user && !blocked.includes(m.from)) count++;
    }
    return count;
  }

  async function commitMessages(
    state: State,
    batch: Extract<Batch, { kind: "messages" }>,
    seqs: SeqSource | undefined,
  ): Promise<CommitOutput> {
    const id = state.info.id;
    const results: Record<string, OpResult> = {};
    const members = { ...state.members };

    // Resends: a (sender, client_id) already stored answers with the stored message.
    const withClient = batch.sends.filter((s) => s.clientId !== undefined);
    const known = await getManyEntries<number>(
      kv,
      withClient.map((s) => keys.messageClientKey(id, s.from, s.clientId!)),
    );
    const knownSeq = new Map<string, number>();
    withClient.forEach((s, i) => {
      const seq = known[i].value;
      if (seq !== null) knownSeq.set(`${s.from}\u0000${s.clientId}`, seq);
    });
    const stored = new Map(
      (await getManyEntries<MessageRecord>(
        kv,
        [...knownSeq.values()].map((s) => keys.messageKey(id, s)),
      ))
        .filter((e) => e.value).map((e) => [e.value!.seq, e.value!]),
    );

    const now = Date.now();
    const fresh: MessageRecord[] = [];
    const inBatch = new Map<string, MessageRecord>();
    let seq = state.head.seq;
    for (const send of batch.sends) {
      const clientKey = send.clientId !== undefined ? `${send.from}\u0000${send.clientId}` : "";
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
      if (clientKey) inBatch.set(clientKey, message);
      results[send.requestId] = { ok: true, message, created: true };
    }

    // Reads move forward only; what stays unread is counted from the stored messages.
    const receipts: { user: string; seq: number }[] = [];
    const unreadSet = new Map<string, number>();
    const current = await unreadOf(id, [...new Set(batch.reads.map((r) => r.user))]);
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
    const accept: Accept = {
      write(op) {
        for (const m of fresh) {
          op.set(keys.messageKey(id, m.seq), m);
          if (m.client_id !== undefined) {
            op.set(keys.messageClientKey(id, m.from, m.client_id), m.seq);
          }
        }
        op.set(keys.conversationHeadKey(id), head);
        for (const user of changed) {
          op.set(keys.conversationMemberKey(id, user), own(members, user)!);
          op.set(
            keys.conversationUnreadKey(id, user),
            new Deno.KvU64(BigInt(unreadSet.get(user)!)),
          );
        }
      },
      mutations: fresh.length * 2 + 1 + changed.length * 2,
      keyBytes: keyBytesOf(id) +
        fresh.reduce((n, m) => n + keyBytesOf(id) + keyBytesOf(id, m.from, m.client_id ?? ""), 0) +
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
    const unread = await unreadOf(id, decrement);
    const accept: Accept = {
      write(op) {
        op.set(keys.messageKey(id, batch.seq), record);
        op.set(keys.conversationHeadKey(id), head);
        for (const user of decrement) {
          op.set(
            keys.conversationUnreadKey(id, user),
            new Deno.KvU64(BigInt(Math.max(0, unread.get(user)! - 1))),
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

  /** Commits a batch that touches no stream: membership and mute. */
  async function commitState(
    state: State,
    batch: Extract<Batch, { kind: "members" | "mute" }>,
  ): Promise<CommitOutput> {
    const id = state.info.id;
    const now = Date.now();
    const members = { ...state.members };
    const blocks: Record<string, string[]> = {};
    const op = kv.atomic().check({
      key: keys.conversationHeadKey(id),
      versionstamp: state.headVersion,
    }).set(keys.conversationHeadKey(id), state.head);
    let info = state.info;
    let result: OpResult;
    if (batch.kind === "members") {
      const added = batch.add.filter((a) => !own(members, a.user));
      for (const { user, role } of added) {
        const member: MemberState = {
          role,
          since: state.head.seq + 1,
          read: state.head.seq,
          muted: false,
          joinedAt: now,
        };
        setOwn(members, user, member);
        op.set(keys.conversationMemberKey(id, user), member);
        op.set(keys.userConversationKey(user, id), { at: now });
      }
      for (const user of batch.remove.filter((u) => own(members, u))) {
        delete members[user];
        op.delete(keys.conversationMemberKey(id, user));
        op.delete(keys.userConversationKey(user, id));
        op.delete(keys.conversationUnreadKey(id, user));
      }
      info = { ...info, members: Object.keys(members).sort() };
      op.set(keys.conversationKey(id), info);
      await Promise.all(added.map(async ({ user }) => {
        const list = (await listValues(kv, keys.blockPrefix(user))).map((e) => e.key[2] as string);
        setOwn(blocks, user, list);
      }));
      result = { ok: true, members: info.members };
    } else {
      const member = { ...own(members, batch.user)!, muted: batch.muted };
      setOwn(members, batch.user, member);
      op.set(keys.conversationMemberKey(id, batch.user), member);
      result = { ok: true, muted: batch.muted };
    }
    const res = await op.commit();
    if (!res.ok) throw new HeadConflictError(id);
    return {
      head: state.head,
      headVersion: res.versionstamp,
      members,
      info,
      blocks,
      results: { [batch.requestId]: result },
      deliveries: [],
      receipts: [],
    };
  }

  async function conversationsOf(user: string): Promise<string[]> {
    return (await listValues(kv, keys.userConversationPrefix(user))).map((e) => e.key[2] as string);
  }

  return {
    async create(info, members) {
      const id = info.id;
      const op = kv.atomic()
        .check({ key: keys.conversationKey(id), versionstamp: null })
        .set(keys.conversationKey(id), info)
        .set(keys.conversationHeadKey(id), { seq: 0, at: info.createdAt } satisfies Head);
      for (const [user, member] of Object.entries(members)) {
        op.set(keys.conversationMemberKey(id, user), member);
        op.set(keys.userConversationKey(user, id), { at: info.createdAt });
      }
      const res = await op.commit();
      if (res.ok) return { created: true, info };
      const existing = (await kv.get<ConversationInfo>(keys.conversationKey(id))).value;
      if (existing) return { created: false, info: existing };
      throw new Error(`Cannot create conversation "${id}"`);
    },

    async load(id) {
      const [info, head, job] = await kv.getMany<[ConversationInfo, Head, FanoutJob]>([
        keys.conversationKey(id),
        keys.conversationHeadKey(id),
        keys.conversationJobKey(id),
      ]);
      if (!info.value || !head.value || !head.versionstamp) return undefined;
      // Only the listed members count: a stray record (a read position an older version
      // saved for a non-member) neither makes its user a member nor breaks the actor.
      const listed = new Set(info.value.members);
      const members: Record<string, MemberState> = {};
      for (const e of await listValues<MemberState>(kv, keys.conversationMemberPrefix(id))) {
        const user = e.key[2] as string;
        if (listed.has(user) && isMemberState(e.value)) setOwn(members, user, e.value);
      }
      const blocks: Record<string, string[]> = {};
      await Promise.all(
        Object.keys(members).map(async (user) => {
          const list = (await listValues(kv, keys.blockPrefix(user))).map((e) =>
            e.key[2] as string
          );
          if (list.length > 0) setOwn(blocks, user, list);
        }),
      );
      return {
        info: info.value,
        head: head.value,
        headVersion: head.versionstamp,
        members,
        blocks,
        ...(job.value ? { job: job.value } : {}),
      } satisfies ConversationState;
    },

    commit({ state, batch, seqs }) {
      switch (batch.kind) {
        case "messages":
          return commitMessages(state, batch, seqs);
        case "edit":
        case "delete":
          return commitChange(state, batch, seqs);
        case "members":
        case "mute":
          return commitState(state, batch);
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

    async unfinished() {
      return (await listValues(kv, keys.conversationJobPrefix())).map((e) => e.key[1] as string);
    },

    async info(id) {
      return (await kv.get<ConversationInfo>(keys.conversationKey(id))).value ?? undefined;
    },

    async head(id) {
      return (await kv.get<Head>(keys.conversationHeadKey(id))).value ?? undefined;
    },

    async member(id, user) {
      const value = (await kv.get<MemberState>(keys.conversationMemberKey(id, user))).value;
      return isMemberState(value) ? value : undefined;
    },

    async messages(id, seqs) {
      const entries = await getManyEntries<MessageRecord>(
        kv,
        seqs.map((s) => keys.messageKey(id, s)),
      );
      return entries.flatMap((e) => e.value ? [e.value] : []);
    },

    async history(id, { before, since, limit, exclude }): Promise<HistoryPage> {
      const start = keys.messageKey(id, Math.max(1, since));
      const selector = before === undefined
        ? { prefix: keys.messagePrefix(id), start }
        : { start, end: keys.messageKey(id, before) };
      const messages: MessageRecord[] = [];
      let more = false;
      if (before !== undefined && before <= Math.max(1, since)) return { messages };
      for await (const { value: m } of kv.list<MessageRecord>(selector, { reverse: true })) {
        if (exclude.includes(m.from)) continue;
        if (messages.length >= limit) {
          more = true;
          break;
        }
        messages.push(m);
      }
      return more ? { messages, next: messages.at(-1)!.seq } : { messages };
    },

    async listForUser(user) {
      const ids = await conversationsOf(user);
      const out: ConversationListing[] = [];
      await Promise.all(
        chunk(ids, GET_MANY).map(async (part) => {
          const [infos, heads, members, unread] = await Promise.all([
            kv.getMany<ConversationInfo[]>(part.map((id) => keys.conversationKey(id))),
            kv.getMany<Head[]>(part.map((id) => keys.conversationHeadKey(id))),
            kv.getMany<MemberState[]>(part.map((id) => keys.conversationMemberKey(id, user))),
            kv.getMany<Deno.KvU64[]>(part.map((id) => keys.conversationUnreadKey(id, user))),
          ]);
          part.forEach((_, i) => {
            const info = infos[i].value;
            const head = heads[i].value;
            const member = members[i].value;
            if (!info || !head || !isMemberState(member)) return;
            out.push({ info, head, member, unread: Number(unread[i].value?.value ?? 0n) });
          });
        }),
      );
      return out;
    },

    conversationsOf,

    async contactsOf(user) {
      const ids = await conversationsOf(user);
      const infos = await getManyEntries<ConversationInfo>(
        kv,
        ids.map((id) => keys.conversationKey(id)),
      );
      const contacts = new Set<string>();
      for (const e of infos) for (const m of e.value?.members ?? []) contacts.add(m);
      contacts.delete(user);
      return [...contacts];
    },

    async setBlock(blocker, blocked, on, now) {
      const entry = await kv.get(keys.blockKey(blocker, blocked));
      if ((entry.value !== null) === on) return false;
      const op = kv.atomic().check(entry);
      if (on) {
        op.set(keys.blockKey(blocker, blocked), { at: now });
        op.set(keys.blockedByKey(blocked, blocker), { at: now });
      } else {
        op.delete(keys.blockKey(blocker, blocked));
        op.delete(keys.blockedByKey(blocked, blocker));
      }
      // A concurrent identical change won the race: the end state is the one asked for.
      return (await op.commit()).ok;
    },

    async isBlocked(blocker, blocked) {
      return (await kv.get(keys.blockKey(blocker, blocked))).value !== null;
    },

    async blocksOf(user) {
      return (await listValues(kv, keys.blockPrefix(user))).map((e) => e.key[2] as string);
    },

    async blockersOf(user) {
      return (await listValues(kv, keys.blockedByPrefix(user))).map((e) => e.key[2] as string);
    },

    async rememberStructures(user, structures) {
      await kv.set(keys.userStructuresKey(user), structures);
    },

    async structuresOf(user) {
      return (await kv.get<string[]>(keys.userStructuresKey(user))).value ?? undefined;
    },
  } satisfies ConversationStore;
}
