/**
 * Membership, block and policy rules of messaging, as pure functions shared by the
 * conversation actor, the store adapter and the service.
 */

import type {
  Attachment,
  ConversationInfo,
  MemberState,
  MessageOp,
  OpError,
} from "./conversation_store.ts";

/** Who may start a conversation with whom: users sharing a structure, or anyone. */
export type ConversationPolicy = "same-structure" | "any";

/** Characters of a message kept as the conversation's preview. */
export const PREVIEW_CHARS = 140;

/** Whether two structure lists have one in common. */
export function sharesStructure(a: readonly string[], b: readonly string[]): boolean {
  const set = new Set(a);
  return b.some((s) => set.has(s));
}

/**
 * The id of the 1:1 conversation of two users: the same whoever starts it, and another for
 * every other pair. Two ids without NUL are hashed joined by one NUL, as they always were
 * (existing conversations keep their ids); a pair with a NUL in an id would be ambiguous
 * that way, so it is hashed as a JSON array, which holds no NUL byte and so never meets
 * the first encoding.
 */
export async function directId(a: string, b: string): Promise<string> {
  const [x, y] = a < b ? [a, b] : [b, a];
  const joined = x.includes("\u0000") || y.includes("\u0000")
    ? JSON.stringify([x, y])
    : `${x}\u0000${y}`;
  const data = new TextEncoder().encode(joined);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return `dm_${Array.from(digest.slice(0, 16), (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** A new group conversation id. */
export function groupId(): string {
  return `c_${crypto.randomUUID().replaceAll("-", "")}`;
}

/**
 * The value a record holds under `key` as its own property, never one inherited from
 * `Object.prototype`: a user called `constructor` is a user like any other.
 */
export function own<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** Sets `key` as an own property of `record`, even a key such as `__proto__`. */
export function setOwn<T>(record: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(record, key, {
    value,
    writable: true,
    enumerable: true,
    configurable: true,
  });
}

/**
 * Whether a stored member record is one: a read position saved for someone who never
 * joined (older versions could write one) does not make them a member.
 */
export function isMemberState(value: unknown): value is MemberState {
  const m = value as Partial<MemberState> | null;
  return typeof m === "object" && m !== null &&
    (m.role === "owner" || m.role === "member") &&
    typeof m.since === "number" && typeof m.read === "number";
}

/** Whether `blocker` blocked `other`. */
export function blocks(
  lists: Readonly<Record<string, readonly string[]>>,
  blocker: string,
  other: string,
): boolean {
  return own(lists, blocker)?.includes(other) ?? false;
}

/** Whether either of two users blocked the other. */
export function blockedEither(
  lists: Readonly<Record<string, readonly string[]>>,
  a: string,
  b: string,
): boolean {
  return blocks(lists, a, b) || blocks(lists, b, a);
}

/**
 * Whether a member gets the stream item of a change to message `seq` by `from`: they
 * must have been a member when it was sent and must not have blocked its author.
 */
export function receives(
  user: string,
  member: MemberState,
  lists: Readonly<Record<string, readonly string[]>>,
  entry: { seq: number; from: string },
): boolean {
  return member.since <= entry.seq && !blocks(lists, user, entry.from);
}

/** Whether a change counts in a member's unread count. */
export function countsUnread(
  user: string,
  member: MemberState,
  entry: { seq: number; from: string; op: MessageOp },
): boolean {
  return entry.op === "new" && entry.from !== user && entry.seq > member.read;
}

/** Checks a message's text and attachments; undefined when it is fine. */
export function checkMessage(
  text: string,
  attachments: readonly Attachment[] | undefined,
  maxLength: number,
): OpError | undefined {
  if (text.length > maxLength) {
    return {
      code: "too_long",
      message: `Message too long: ${text.length} characters, at most ${maxLength}`,
    };
  }
  if (text.trim() === "" && !(attachments && attachments.length > 0)) {
    return { code: "validation_failed", message: "Empty message: send text or an attachment" };
  }
  return undefined;
}

/** The error for a user who is not a member. */
export function notMember(conversation: string, user: string): OpError {
  return {
    code: "not_member",
    message: `User "${user.slice(0, 100)}" is not a member of conversation "${conversation}"`,
  };
}

/** The other member of a 1:1 conversation. */
export function peerOf(info: ConversationInfo, user: string): string | undefined {
  return info.kind === "direct" ? info.members.find((m) => m !== user) : undefined;
}
