/**
 * How a conversation looks outside the server: in detail (its members with their roles,
 * read positions and presence) and as an entry of its member's list.
 */

import type { PresenceStatus } from "../schemas/frames.ts";
import { DELETED_USER_LABEL } from "./message_view.ts";
import type {
  ConversationInfo,
  ConversationKind,
  ConversationLink,
  ConversationListing,
  Head,
  MemberRole,
  MemberState,
} from "./conversation_store.ts";

/** A member as shown in a conversation. */
export interface MemberView {
  id: string;
  role: MemberRole;
  read: number;
  presence: PresenceStatus;
}

/** A conversation in detail. */
export interface ConversationView {
  id: string;
  kind: ConversationKind;
  title?: string;
  context?: ConversationLink;
  created_at: string;
  /** The creator's id, or null once they were erased (`created_by_deleted`). */
  created_by: string | null;
  /** The creator was erased; show {@linkcode DELETED_USER_LABEL}. */
  created_by_deleted?: true;
  /** The label of an erased creator, in French and English. */
  created_by_label?: typeof DELETED_USER_LABEL;
  members: MemberView[];
  last_seq: number;
}

/** A conversation in its member's list. */
export interface ConversationSummary {
  id: string;
  kind: ConversationKind;
  title?: string;
  context?: ConversationLink;
  members: string[];
  last: { seq: number; at: string; from?: string; preview?: string } | null;
  read: number;
  unread: number;
  muted: boolean;
  /** Presence of the other members. */
  presence: Record<string, PresenceStatus>;
}

/** Where a conversation's view takes its members and their presence from. */
export interface ConversationViewSources {
  /** The conversation's head; absent for one without messages yet. */
  head?: Head;
  /** Each member of the conversation with its state; a member without one is left out. */
  members: { id: string; state: MemberState | undefined }[];
  statusOf(user: string): PresenceStatus;
}

/** The client view of a conversation in detail. */
export function conversationView(
  info: ConversationInfo,
  { head, members, statusOf }: ConversationViewSources,
): ConversationView {
  return {
    id: info.id,
    kind: info.kind,
    ...(info.title !== undefined ? { title: info.title } : {}),
    ...(info.context ? { context: info.context } : {}),
    created_at: new Date(info.createdAt).toISOString(),
    ...(info.creatorErased
      ? {
        created_by: null,
        created_by_deleted: true as const,
        created_by_label: DELETED_USER_LABEL,
      }
      : { created_by: info.createdBy }),
    members: members.filter((m) => m.state).map((m) => ({
      id: m.id,
      role: m.state!.role,
      read: m.state!.read,
      presence: statusOf(m.id),
    })),
    last_seq: head?.seq ?? 0,
  };
}

/** The client view of a conversation in the list of its member `user`. */
export function conversationSummary(
  listing: ConversationListing,
  { user, statusOf }: { user: string; statusOf(user: string): PresenceStatus },
): ConversationSummary {
  const { info, head, member } = listing;
  const others = info.members.filter((m) => m !== user);
  return {
    id: info.id,
    kind: info.kind,
    ...(info.title !== undefined ? { title: info.title } : {}),
    ...(info.context ? { context: info.context } : {}),
    members: info.members,
    last: head.seq === 0 ? null : {
      seq: head.seq,
      at: new Date(head.at).toISOString(),
      ...(head.from !== undefined ? { from: head.from } : {}),
      ...(head.preview !== undefined ? { preview: head.preview } : {}),
    },
    read: member.read,
    unread: listing.unread,
    muted: member.muted,
    presence: Object.fromEntries(others.map((m) => [m, statusOf(m)])),
  };
}
