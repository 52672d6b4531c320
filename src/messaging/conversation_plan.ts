/**
 * What a new conversation is made of: its kind, members, owners and creator, settled from
 * who creates it and what they asked for, with the checks that need no store. The checks
 * about people (the structure policy, blocks) are the messaging service's.
 */

import type { UserPrincipal } from "../auth/principal.ts";
import { AppError } from "../errors.ts";
import type { ConversationKind, ConversationLink } from "./conversation_store.ts";

/** Who creates a conversation or changes its members. */
export type Actor =
  | { kind: "user"; user: UserPrincipal }
  | { kind: "service"; name: string };

/** What a conversation is created with. */
export interface CreateConversation {
  kind?: ConversationKind;
  title?: string;
  /** For a user: the other members. For a service: every member. */
  members: string[];
  /** Service only: members who manage the group. */
  owners?: string[];
  context?: ConversationLink;
}

/** The people of a new conversation, as {@linkcode planConversation} settles them. */
export interface ConversationPlan {
  kind: ConversationKind;
  /** Every member, without duplicates; a user creating it comes first. */
  members: string[];
  owners: string[];
  /** The user's id, or `service:<name>`. */
  createdBy: string;
}

const quote = (s: string) => `"${s.slice(0, 100)}"`;

/**
 * Settles a new conversation's kind, members, owners and creator. A user lists the others
 * and owns the group they create; a service lists every member and names the owners. Throws
 * `validation_failed` for a request that cannot make a conversation, and
 * `conversation_full` past `maxMembers`.
 */
export function planConversation(
  actor: Actor,
  input: CreateConversation,
  { maxMembers }: { maxMembers: number },
): ConversationPlan {
  const unique = [...new Set(input.members)];
  let plan: ConversationPlan;
  if (actor.kind === "user") {
    const me = actor.user.id;
    const others = unique.filter((m) => m !== me);
    if (others.length === 0) {
      throw new AppError("validation_failed", "A conversation needs at least one other member", {
        details: [{ path: "members", message: "expected another user than yourself" }],
      });
    }
    const kind = input.kind ??
      (others.length === 1 && input.title === undefined ? "direct" : "group");
    plan = { kind, members: [me, ...others], owners: kind === "group" ? [me] : [], createdBy: me };
    if (input.owners !== undefined) {
      throw new AppError("validation_failed", "Only a service sets the owners", {
        details: [{ path: "owners", message: "not allowed for users" }],
      });
    }
  } else {
    const owners = [...new Set(input.owners ?? [])];
    plan = {
      kind: input.kind ?? "group",
      members: unique,
      owners,
      createdBy: `service:${actor.name}`,
    };
    const stranger = owners.find((o) => !unique.includes(o));
    if (stranger !== undefined) {
      throw new AppError("validation_failed", `Owner ${quote(stranger)} is not a member`, {
        details: [{ path: "owners", message: "every owner must be a member" }],
      });
    }
  }
  if (plan.kind === "direct" && plan.members.length !== 2) {
    throw new AppError("validation_failed", "A 1:1 conversation has exactly two members", {
      details: [{ path: "members", message: "expected exactly one other member" }],
    });
  }
  if (plan.members.length > maxMembers) {
    throw new AppError(
      "conversation_full",
      `Too many members: ${plan.members.length}, at most ${maxMembers}`,
    );
  }
  return plan;
}
