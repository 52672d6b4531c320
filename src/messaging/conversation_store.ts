/**
 * The conversation store port: conversations, members, messages, blocks and what a
 * conversation actor commits, in domain terms.
 *
 * The conversation actor is the only writer of a conversation once it exists: it hands
 * the store a whole batch (messages, read positions, membership changes) and the store
 * writes it, with the members' stream items, in as few atomic commits as KV allows. The
 * Deno KV adapter is `kv_conversation_store.ts`.
 */

import type { SeqOptions, SeqSource, StreamItem } from "../store/store.ts";

/** A 1:1 conversation (one per pair, reused) or a group. */
export type ConversationKind = "direct" | "group";

/** What a member may do: owners manage the members of a group. */
export type MemberRole = "owner" | "member";

/** What a conversation is about (e.g. the peer-review group of an activity). */
export interface ConversationLink {
  type: string;
  id: string;
  url?: string;
}

/** The slowly changing part of a conversation. */
export interface ConversationInfo {
  id: string;
  kind: ConversationKind;
  title?: string;
  context?: ConversationLink;
  createdAt: number;
  /**
   * A user id, or `service:<name>` for a conversation a backend created; empty once the
   * creator was erased (`creatorErased`).
   */
  createdBy: string;
  /** The creator was erased (right to erasure): their id is no longer kept here. */
  creatorErased?: true;
  /** Member ids, sorted. */
  members: string[];
}

/** One member's state in a conversation. */
export interface MemberState {
  role: MemberRole;
  /** The first message seq this member may see (members added later see what follows). */
  since: number;
  /** The last seq this member has read. */
  read: number;
  muted: boolean;
  joinedAt: number;
}

/** The conversation's last message: the next seq is `seq + 1`. */
export interface Head {
  seq: number;
  at: number;
  from?: string;
  /** The start of the last message's text, for conversation lists. */
  preview?: string;
}

/** A file a message points to; relais stores the reference, not the file. */
export interface Attachment {
  url: string;
  name: string;
}

/** A stored message. */
export interface MessageRecord {
  /** Unique id, also the id of the message's items in members' streams. */
  id: string;
  seq: number;
  from: string;
  text: string;
  at: number;
  client_id?: string;
  attachments?: Attachment[];
  editedAt?: number;
  /** Deleted messages keep their seq; their text and attachments are erased. */
  deleted?: true;
  /**
   * The author was erased (right to erasure): the message stays for the other members,
   * `from` still holds the id, and views show it as a deleted user's.
   */
  authorErased?: true;
}

/** A message change carried by a stream item: new, edited or deleted. */
export type MessageOp = NonNullable<StreamItem["msg"]>["op"];

/** What a member's stream item for a message points to: conversation, seq and change. */
export type MessageRef = NonNullable<StreamItem["msg"]>;

/** A stream item that carries a message change. */
export type MessageItem = StreamItem & { msg: MessageRef };

/** One message change being written to members' streams. */
export interface FanoutEntry {
  seq: number;
  /** Id of the stream items written for this change. */
  itemId: string;
  op: MessageOp;
  /** The message's author (whose blockers get nothing). */
  from: string;
}

/**
 * A fan-out too large for one commit, recorded with the batch that started it so that a
 * crash resumes it; the actor runs nothing else until it is done.
 */
export interface FanoutJob {
  entries: FanoutEntry[];
  /** How many members (in sorted order) have their items written already. */
  offset: number;
}

/** Everything a conversation actor starts from. */
export interface ConversationState {
  info: ConversationInfo;
  head: Head;
  /** Versionstamp of the head entry: every commit checks it, so one writer wins. */
  headVersion: string;
  members: Record<string, MemberState>;
  /** For each member, the users they blocked. */
  blocks: Record<string, string[]>;
  job?: FanoutJob;
}

/** A message to send. */
export interface SendInput {
  requestId: string;
  from: string;
  text: string;
  clientId?: string;
  /** A forwarding node's key of a send without `clientId` (see `ConversationOp`). */
  resendKey?: string;
  attachments?: Attachment[];
}

/** Who acts on a conversation: one of its users or a backend service. */
export type Caller = { user: string } | { service: string };

/** A batch of writes decided by the conversation actor. */
export type Batch =
  | {
    kind: "messages";
    sends: SendInput[];
    /** New read positions (already checked to be members and to move forward). */
    reads: { requestId: string; user: string; seq: number }[];
  }
  | { kind: "edit"; requestId: string; by: string; seq: number; text: string }
  | { kind: "delete"; requestId: string; by: string; seq: number; asOwner: boolean }
  | {
    kind: "members";
    requestId: string;
    add: { user: string; role: MemberRole }[];
    remove: string[];
  }
  | { kind: "mute"; requestId: string; user: string; muted: boolean };

/** An error a batch can answer for one request. */
export interface OpError {
  code:
    | "not_found"
    | "forbidden"
    | "conflict"
    | "not_member"
    | "blocked"
    | "too_long"
    | "conversation_full"
    | "validation_failed"
    | "unavailable";
  message: string;
}

/** The answer to one request. */
export type OpResult =
  | { ok: true; message: MessageRecord; created: boolean }
  | { ok: true; read: number; unread: number }
  | { ok: true; members: string[] }
  | { ok: true; muted: boolean }
  | { ok: true }
  | { ok: false; error: OpError };

/** Items written for one message change, for live delivery. */
export interface Delivery {
  message: MessageRecord;
  op: MessageOp;
  items: { user: string; item: MessageItem }[];
}

/** What a commit gives back: the new state, the answers and what to push live. */
export interface CommitOutput {
  head: Head;
  headVersion: string;
  members: Record<string, MemberState>;
  info: ConversationInfo;
  /** Block lists of members added by this commit. */
  blocks: Record<string, string[]>;
  results: Record<string, OpResult>;
  deliveries: Delivery[];
  /** Read positions that moved. */
  receipts: { user: string; seq: number }[];
}

/** What the store gets to commit a batch. */
export interface CommitInput {
  state: Omit<ConversationState, "job">;
  batch: Batch;
  /**
   * The live stream heads of this process: a member with one gets the batch's items at
   * the seqs it hands out, with no read, check or write of their stored last seq.
   */
  seqs?: SeqSource;
}

/** A conversation as listed for one of its members. */
export interface ConversationListing {
  info: ConversationInfo;
  head: Head;
  member: MemberState;
  unread: number;
}

/** A page of history, newest first. */
export interface HistoryPage {
  messages: MessageRecord[];
  /** Pass as `before` for the next (older) page; absent on the last page. */
  next?: number;
}

/** Thrown when another writer moved the conversation's head: the actor must reload. */
export class HeadConflictError extends Error {
  constructor(conversation: string) {
    super(`Conversation "${conversation}" was written by another writer`);
    this.name = "HeadConflictError";
  }
}

/** Everything messaging keeps durably. */
export interface ConversationStore {
  /**
   * Creates a conversation with its members. Members too many for one commit are written
   * in several, the conversation's own record in the last one: until then its member
   * records belong to no conversation, and readers skip them. If the id exists already (a
   * 1:1 conversation started twice), answers `created: false` with the existing one.
   */
  create(
    info: ConversationInfo,
    members: Record<string, MemberState>,
  ): Promise<{ created: boolean; info: ConversationInfo }>;
  /** Everything an actor needs, or undefined for an unknown conversation. */
  load(id: string): Promise<ConversationState | undefined>;
  /** Writes a batch and its members' stream items; throws {@linkcode HeadConflictError}. */
  commit(input: CommitInput): Promise<CommitOutput>;
  /**
   * Finishes the fan-out job a crash interrupted; members with a live head in `seqs` get
   * their items at the seqs it hands out, as in {@linkcode ConversationStore.commit}.
   */
  resume(state: ConversationState, options?: SeqOptions): Promise<CommitOutput>;
  /** Conversations with an unfinished fan-out job. */
  unfinished(): Promise<string[]>;

  info(id: string): Promise<ConversationInfo | undefined>;
  head(id: string): Promise<Head | undefined>;
  member(id: string, user: string): Promise<MemberState | undefined>;
  /** Messages by seq, in the order asked; missing ones are left out. */
  messages(id: string, seqs: number[]): Promise<MessageRecord[]>;
  /** Messages before `before` (exclusive), from `since` on, newest first. */
  history(
    id: string,
    options: { before?: number; since: number; limit: number; exclude: string[] },
  ): Promise<HistoryPage>;
  /** The user's conversations. */
  listForUser(user: string): Promise<ConversationListing[]>;
  /** Ids of the user's conversations. */
  conversationsOf(user: string): Promise<string[]>;
  /** Everyone who shares a conversation with the user (not the user). */
  contactsOf(user: string): Promise<string[]>;

  /** Blocks or unblocks `blocked` for `blocker`; answers whether anything changed. */
  setBlock(blocker: string, blocked: string, on: boolean, now: number): Promise<boolean>;
  isBlocked(blocker: string, blocked: string): Promise<boolean>;
  /** Users `user` blocked. */
  blocksOf(user: string): Promise<string[]>;
  /** Users who blocked `user`. */
  blockersOf(user: string): Promise<string[]>;

  /**
   * Removes `user` from conversation `id` outside its actor, for the right to erasure
   * (the members of a 1:1 conversation are otherwise fixed): their member record, unread
   * count and list entry go, the other members stay, and if they created it, their id
   * goes from `createdBy` (`creatorErased`). The commit checks and rewrites the head, so a
   * live actor reloads before it writes again. Answers whether they were a member; stray
   * records of a non-member are removed all the same.
   */
  eraseMember(id: string, user: string): Promise<boolean>;
  /**
   * Marks every message `user` wrote in conversation `id` as a deleted user's
   * (`authorErased`) and forgets the client ids of their sends; the messages stay for the
   * other members. Each commit checks that the messages it marks did not change
   * meanwhile. Answers how many messages were marked.
   */
  markAuthorErased(id: string, user: string): Promise<number>;
  /**
   * Forgets what is kept about a user beside conversations: the structures their
   * credentials last carried, and any block left in either direction.
   */
  forgetUser(user: string): Promise<void>;

  /** Remembers the structures a user's credentials last carried. */
  rememberStructures(user: string, structures: string[]): Promise<void>;
  structuresOf(user: string): Promise<string[] | undefined>;
}
