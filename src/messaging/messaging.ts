/**
 * The messaging service: what routes and WebSocket frames call to create conversations,
 * send and read messages, manage members and blocks.
 *
 * Reads (lists, history) go straight to the store; every write to a conversation goes
 * through its actor, the single writer. Rules about people (the structure policy, blocks
 * against the creator) are checked here; rules about the conversation (membership, size,
 * authorship) in the actor, against its own state. What a new conversation is made of is
 * settled by `conversation_plan.ts`, and how a conversation looks by `conversation_view.ts`.
 */

import { LRUCache } from "lru-cache";
import type { UserPrincipal } from "../auth/principal.ts";
import { AppError } from "../errors.ts";
import type { PresenceStatus } from "../schemas/frames.ts";
import { keyBytesOf, MAX_KEY_BYTES, MAX_MUTATIONS } from "../store/kv/limits.ts";
import type { StreamItem } from "../store/store.ts";
import type { ConversationActors } from "./conversation_actors.ts";
import type {
  Attachment,
  Caller,
  ConversationInfo,
  ConversationStore,
  Head,
  MemberRole,
  MemberState,
  MessageRecord,
  OpResult,
} from "./conversation_store.ts";
import { type Actor, type CreateConversation, planConversation } from "./conversation_plan.ts";
import {
  type ConversationSummary,
  conversationSummary,
  type ConversationView,
  conversationView,
} from "./conversation_view.ts";
import { encodeMsgFrame, type MessageView, messageView } from "./message_view.ts";
import type { Presence } from "./presence.ts";
import type { SpanContext, Tracing } from "../tracing.ts";
import { type ConversationPolicy, directId, groupId, sharesStructure } from "./rules.ts";

export type { Actor, CreateConversation } from "./conversation_plan.ts";

/** What a message is sent with. */
export interface SendMessage {
  text: string;
  client_id?: string;
  attachments?: Attachment[];
}

/** The messaging service. */
export interface Messaging {
  /** Remembers what the user's credentials say about them (their structures). */
  seen(user: UserPrincipal): void;
  create(actor: Actor, input: CreateConversation): Promise<{
    conversation: ConversationView;
    created: boolean;
  }>;
  list(user: string): Promise<{ conversations: ConversationSummary[]; unread_total: number }>;
  get(user: string, id: string): Promise<ConversationView>;
  history(
    user: string,
    id: string,
    options: { before?: number; limit: number },
  ): Promise<{ messages: MessageView[]; next?: number }>;
  /** Sends a message; answers once it is committed (`created: false` for a resend). */
  send(
    user: string,
    id: string,
    message: SendMessage,
  ): Promise<{ message: MessageView; created: boolean }>;
  edit(user: string, id: string, seq: number, text: string): Promise<MessageView>;
  remove(user: string, id: string, seq: number): Promise<MessageView>;
  /** Moves the user's read position (to the last message when `seq` is absent). */
  read(user: string, id: string, seq?: number): Promise<{ read: number; unread: number }>;
  typing(user: string, id: string): Promise<void>;
  addMembers(
    actor: Actor,
    id: string,
    members: { id: string; role?: MemberRole }[],
  ): Promise<{ members: string[] }>;
  removeMember(actor: Actor, id: string, user: string): Promise<{ members: string[] }>;
  mute(user: string, id: string, muted: boolean): Promise<{ muted: boolean }>;
  block(user: string, other: string): Promise<{ changed: boolean }>;
  unblock(user: string, other: string): Promise<{ changed: boolean }>;
  blocks(user: string): Promise<string[]>;
  /**
   * The `msg` frame of a MESSAGE stream item of `user` (replays), or undefined if it is
   * gone or `user` may no longer read it (they left the conversation).
   */
  renderItem(user: string, item: StreamItem): Promise<string | undefined>;
  /** The `msg` frame of a message, outside any stream (the answer to a resend). */
  frameOf(message: MessageView): string;
  /** A user's presence changed: tell their contacts. */
  presenceChanged(user: string, status: PresenceStatus): void;
  /** Resumes fan-outs a previous process left unfinished. */
  start(): Promise<number>;
}

/** Dependencies of {@linkcode createMessaging}. */
export interface MessagingDeps {
  store: ConversationStore;
  actors: ConversationActors;
  presence: Presence;
  policy: ConversationPolicy;
  maxMembers: number;
  /** Where other users' structures come from; the messaging store by default. */
  structuresOf?: (user: string) => Promise<string[] | undefined>;
  /**
   * Counts one conversation a user creates against their limit; throws `rate_limited`
   * when over (the guard's `consumeConversation`). Reopening a 1:1 conversation, or a
   * request refused before anything is created, counts nothing.
   */
  countConversation?: (user: string) => Promise<void>;
  onError(message: string, error: unknown): void;
  /** A trace per message sent (`msg.send`); none when traces are off. */
  tracing?: Tracing;
  now?: () => number;
}

/** How many users' structures are kept in memory to skip rewriting unchanged ones. */
const SEEN_CACHE = 10_000;

function throwIfFailed(result: OpResult): asserts result is Exclude<OpResult, { ok: false }> {
  if (!result.ok) throw new AppError(result.error.code, result.error.message);
}

const quote = (s: string) => `"${s.slice(0, 100)}"`;

/** Bytes a conversation's record may take as a KV value (64 KiB), less a margin. */
const MAX_INFO_BYTES = 60_000;

/** Bytes of a string in a stored value: one per character, two beyond Latin-1. */
function storedBytes(text: string): number {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0xff) return 2 * text.length + 8;
  return text.length + 8;
}

/**
 * Refuses a conversation whose record would not fit one KV value: its member ids are
 * kept in it, and a few hundred long ones take more than 64 KiB.
 */
function assertStorable(info: ConversationInfo) {
  let bytes = 500 + storedBytes(info.title ?? "") + storedBytes(JSON.stringify(info.context ?? {}));
  for (const m of info.members) bytes += storedBytes(m);
  if (bytes > MAX_INFO_BYTES) {
    throw new AppError(
      "validation_failed",
      `Member ids too long: ${info.members.length} ids take about ${bytes} bytes, at most ${MAX_INFO_BYTES}`,
      { details: [{ path: "members", message: "the members' ids are too long all together" }] },
    );
  }
}

/**
 * Refuses an addition of members whose keys would not fit one commit of the embedded
 * store (each new member is written twice, under the conversation and under the user,
 * with the conversation's head and record): it would fail its commit on every try. A
 * long list of long ids goes in several smaller additions.
 */
function assertOneCommit(id: string, added: string[]) {
  const keyBytes = added.reduce((n, user) => n + 2 * keyBytesOf(id, user), 2 * keyBytesOf(id));
  if (keyBytes > MAX_KEY_BYTES || 2 * added.length + 2 > MAX_MUTATIONS) {
    throw new AppError(
      "validation_failed",
      `Too many long member ids for one addition: ${added.length} ids take about ${keyBytes} bytes of keys, at most ${MAX_KEY_BYTES}`,
      { details: [{ path: "members", message: "add these members in several smaller steps" }] },
    );
  }
}

/** Creates the messaging service. */
export function createMessaging(deps: MessagingDeps): Messaging {
  const { store, actors, presence } = deps;
  const now = deps.now ?? Date.now;
  const seenCache = new LRUCache<string, string>({ max: SEEN_CACHE });
  const structuresOf = deps.structuresOf ?? ((user: string) => store.structuresOf(user));

  async function membership(user: string, id: string): Promise<{
    info: ConversationInfo;
    member: MemberState;
  }> {
    const [info, member] = await Promise.all([store.info(id), store.member(id, user)]);
    if (!info) throw new AppError("not_found", `Unknown conversation ${quote(id)}`);
    if (!member) {
      throw new AppError("not_member", `You are not a member of conversation ${quote(id)}`);
    }
    return { info, member };
  }

  /** May `user` bring `others` into a conversation? (policy and their blocks) */
  async function checkPeople(user: UserPrincipal, others: string[]) {
    await Promise.all(others.map(async (other) => {
      if (await store.isBlocked(other, user.id)) {
        throw new AppError(
          "blocked",
          `User ${quote(other)} does not accept conversations with you`,
        );
      }
      if (deps.policy === "any") return;
      const theirs = await structuresOf(other) ?? [];
      if (!sharesStructure(user.structures, theirs)) {
        throw new AppError(
          "forbidden",
          `Cannot start a conversation with ${quote(other)}: you share no structure`,
        );
      }
    }));
  }

  const statusOf = (user: string) => presence.statusOf(user);

  async function view(info: ConversationInfo, head?: Head): Promise<ConversationView> {
    const members = await Promise.all(
      info.members.map(async (m) => ({ id: m, state: await store.member(info.id, m) })),
    );
    return conversationView(info, { head, members, statusOf });
  }

  function byOf(actor: Actor): Caller {
    return actor.kind === "user" ? { user: actor.user.id } : { service: actor.name };
  }

  async function create(actor: Actor, input: CreateConversation) {
    const at = now();
    const { kind, members, owners, createdBy } = planConversation(actor, input, {
      maxMembers: deps.maxMembers,
    });
    if (actor.kind === "user") await checkPeople(actor.user, members.slice(1));

    const id = kind === "direct" ? await directId(members[0], members[1]) : groupId();
    const info: ConversationInfo = {
      id,
      kind,
      ...(input.title !== undefined ? { title: input.title } : {}),
      ...(input.context ? { context: input.context } : {}),
      createdAt: at,
      createdBy,
      members: [...members].sort(),
    };
    const states: Record<string, MemberState> = Object.fromEntries(members.map((m) => [
      m,
      {
        role: owners.includes(m) ? "owner" : "member",
        since: 1,
        read: 0,
        muted: false,
        joinedAt: at,
      } satisfies MemberState,
    ]));
    assertStorable(info);
    const known = kind === "direct" ? await store.info(id) : undefined;
    if (!known && actor.kind === "user") await deps.countConversation?.(actor.user.id);
    const result = known ? { created: false, info: known } : await store.create(info, states);
    if (!result.created && actor.kind === "user" && !result.info.members.includes(actor.user.id)) {
      // The pair's conversation exists without the caller (they were erased from it): it is
      // someone else's, answered as any conversation they cannot see.
      throw new AppError("not_member", `You are not a member of conversation ${quote(id)}`);
    }
    const head = result.created ? undefined : await store.head(id);
    return { conversation: await view(result.info, head), created: result.created };
  }

  async function renderItem(user: string, item: StreamItem): Promise<string | undefined> {
    if (!item.msg) return undefined;
    const { c, s } = item.msg;
    const [member, [message]] = await Promise.all([
      store.member(c, user),
      store.messages(c, [s]),
    ]);
    // The frame shows the message as it is now: only a reader who may still read it (as
    // history does) gets it, never one who left and would see later edits.
    if (!message || !member || member.since > s) return undefined;
    return encodeMsgFrame(JSON.stringify(messageView(item.msg.c, message)), {
      seq: item.seq,
      op: item.msg.op,
    });
  }

  async function setBlock(user: string, other: string, on: boolean) {
    if (other === user) {
      throw new AppError("validation_failed", "You cannot block yourself", {
        details: [{ path: "userId", message: "expected another user" }],
      });
    }
    const changed = await store.setBlock(user, other, on, now());
    if (changed) {
      for (const id of await store.conversationsOf(user)) {
        actors.blockChanged(id, user, other, on);
      }
    }
    return { changed };
  }

  const messageOf = (id: string, result: OpResult): MessageRecord => {
    throwIfFailed(result);
    if (!("message" in result)) throw new Error(`Conversation "${id}" answered without a message`);
    return result.message;
  };

  return {
    seen(user) {
      const key = JSON.stringify(user.structures);
      if (seenCache.get(user.id) === key) return;
      seenCache.set(user.id, key);
      store.rememberStructures(user.id, user.structures).catch((error) => {
        seenCache.delete(user.id);
        deps.onError(`Cannot remember the structures of "${user.id}"`, error);
      });
    },

    create,

    async list(user) {
      const listed = await store.listForUser(user);
      listed.sort((a, b) => b.head.at - a.head.at || (a.info.id < b.info.id ? -1 : 1));
      const conversations = listed.map((l) => conversationSummary(l, { user, statusOf }));
      const unread_total = conversations.reduce((n, c) => n + (c.muted ? 0 : c.unread), 0);
      return { conversations, unread_total };
    },

    async get(user, id) {
      const { info } = await membership(user, id);
      return await view(info, await store.head(id));
    },

    async history(user, id, { before, limit }) {
      const { member } = await membership(user, id);
      const page = await store.history(id, {
        before,
        since: member.since,
        limit,
        exclude: await store.blocksOf(user),
      });
      return {
        messages: page.messages.map((m) => messageView(id, m)),
        ...(page.next !== undefined ? { next: page.next } : {}),
      };
    },

    async send(user, id, message) {
      const submit = (trace?: SpanContext) =>
        actors.submit(id, {
          kind: "send",
          from: user,
          text: message.text,
          ...(message.client_id !== undefined ? { clientId: message.client_id } : {}),
          ...(message.attachments ? { attachments: message.attachments } : {}),
        }, trace);
      // No await before submit: one caller's messages reach the actor in their order (a
      // traced send starts its span and submits in the same turn).
      const result =
        await (deps.tracing
          ? deps.tracing.run("msg.send", { "relais.conversation": id, "relais.user": user }, submit)
          : submit());
      throwIfFailed(result);
      if (!("created" in result)) {
        throw new Error(`Conversation "${id}" answered without a message`);
      }
      return { message: messageView(id, result.message), created: result.created };
    },

    async edit(user, id, seq, text) {
      const result = await actors.submit(id, { kind: "edit", by: user, seq, text });
      return messageView(id, messageOf(id, result));
    },

    async remove(user, id, seq) {
      const result = await actors.submit(id, { kind: "delete", by: user, seq });
      return messageView(id, messageOf(id, result));
    },

    async read(user, id, seq) {
      const result = await actors.submit(id, {
        kind: "read",
        user,
        seq: seq ?? Number.MAX_SAFE_INTEGER,
      });
      throwIfFailed(result);
      if (!("read" in result)) throw new Error(`Conversation "${id}" answered without a read`);
      return { read: result.read, unread: result.unread };
    },

    async typing(user, id) {
      throwIfFailed(await actors.typing(id, user));
    },

    async addMembers(actor, id, members) {
      const users = [...new Map(members.map((m) => [m.id, m])).values()];
      let info: ConversationInfo | undefined;
      if (actor.kind === "user") {
        if (users.some((m) => m.role !== undefined)) {
          throw new AppError("validation_failed", "Only a service sets member roles", {
            details: [{ path: "members", message: "roles are not allowed for users" }],
          });
        }
        info = (await membership(actor.user.id, id)).info;
        const known = info.members;
        await checkPeople(actor.user, users.map((m) => m.id).filter((m) => !known.includes(m)));
      } else info = await store.info(id);
      // The record keeps every member id: an addition it could not hold would fail its
      // commit on every try, so it is refused as a creation would be.
      if (info) {
        const known = info.members;
        const added = users.map((m) => m.id).filter((m) => !known.includes(m));
        assertStorable({ ...info, members: [...known, ...added] });
        assertOneCommit(id, added);
      }
      const result = await actors.submit(id, {
        kind: "add",
        by: byOf(actor),
        users: users.map((m) => ({ user: m.id, role: m.role ?? "member" })),
      });
      throwIfFailed(result);
      return { members: "members" in result ? result.members : [] };
    },

    async removeMember(actor, id, user) {
      const result = await actors.submit(id, { kind: "remove", by: byOf(actor), user });
      throwIfFailed(result);
      return { members: "members" in result ? result.members : [] };
    },

    async mute(user, id, muted) {
      const result = await actors.submit(id, { kind: "mute", user, muted });
      throwIfFailed(result);
      return { muted };
    },

    block: (user, other) => setBlock(user, other, true),
    unblock: (user, other) => setBlock(user, other, false),
    blocks: (user) => store.blocksOf(user),

    renderItem,
    frameOf: (message) => encodeMsgFrame(JSON.stringify(message)),
    presenceChanged: (user, status) => presence.announce(user, status),
    start: () => actors.resumeUnfinished(),
  };
}
