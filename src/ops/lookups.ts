/**
 * What the ops page looks up: everything this node knows of one user or one conversation,
 * gathered from the services that own it (directory, hub, stream heads, store, controls,
 * actor registry), and the operator's "disconnect" action.
 *
 * Connections and stream heads live in one process: a lookup tells this node's stream
 * head; in a cluster it also asks the nodes holding the user's other connections (cluster
 * presence knows which) for theirs, and a disconnect closes them all.
 */

import type { ActorDetail, Registry } from "../../actors/registry.ts";
import { type Actor, type Control, covers, isActive, type Subject } from "../controls/control.ts";
import type { Controls } from "../controls/controls.ts";
import type { HeadPosition } from "../delivery/stream_heads.ts";
import type { Directory, DirectoryEntry } from "../directory/directory.ts";
import type {
  ConversationInfo,
  ConversationStore,
  Head,
  MemberState,
} from "../messaging/conversation_store.ts";
import type { Connection } from "../realtime/hub.ts";
import type { DeliveryStore, InboxStore, PendingAck, StreamStore } from "../store/store.ts";

/** How many members, pending acks and recent items a lookup shows at most. */
export const LOOKUP_LIMIT = 100;
/** How many of the latest inbox items a user lookup shows. */
export const LAST_DELIVERIES = 10;

/** An actor as a lookup shows it: its state and status, without its whole context. */
export interface ActorState {
  status: string;
  state: unknown;
  timers?: ActorDetail["timers"];
}

/** What `GET /v1/admin/users/:id` answers. */
export interface UserLookup {
  id: string;
  /** The node that answered: the stream head is this node's. */
  node: string;
  directory: DirectoryEntry | null;
  /** Connections on every node (in a cluster, each says its node). */
  connections: ConnectionInfo[];
  connection_counts: { ws: number; sse: number; poll: number };
  /** The live stream head; `null` when the user has none on this node. */
  stream: (HeadPosition & { last_seq: number }) | { last_seq: number; epoch: null };
  unread: number;
  pending: {
    id: string;
    seq: number;
    attempts: number;
    limit: number;
    next_at: string | null;
  }[];
  pending_count: number;
  /** Active switches whose scope covers the user, and the features off for them. */
  controls: Control[];
  disabled: { feature: string; reason: string; scope: Control["scope"] }[];
  last_deliveries: {
    id: string;
    seq: number;
    type: string;
    at: string;
    read: boolean;
    topic?: string;
  }[];
  actor: ActorState | null;
}

/** A connection as a lookup shows it. */
export interface ConnectionInfo {
  id: string;
  transport: Connection["outlet"]["transport"];
  /** The node holding it, in a cluster. */
  node?: string;
}

/** The other nodes of a cluster, as lookups reach them. */
export interface LookupPeers {
  /** The nodes holding a connection of the user (this one included). */
  nodesOf(user: string): string[];
  /** The user's connections on `node`. */
  connectionsOn(node: string, user: string): Promise<ConnectionInfo[]>;
  /** Closes the user's connections on `node`; answers how many. */
  disconnectOn(node: string, user: string): Promise<number>;
  /** Answers the other nodes' lookups with what this node holds. */
  serve(here: Lookups["here"]): void;
}

/** What `GET /v1/admin/conversations/:id` answers. */
export interface ConversationLookup {
  id: string;
  info: ConversationInfo;
  head: Head | null;
  members: ({ id: string } & MemberState)[];
  member_count: number;
  actor: ActorState | null;
}

/** Dependencies of {@linkcode createLookups}. */
export interface LookupsDeps {
  node: string;
  directory: Pick<Directory, "get">;
  hub: { ofUser(user: string): Connection[] };
  heads: { position(user: string): HeadPosition | undefined };
  store:
    & Pick<StreamStore, "lastSeq">
    & Pick<DeliveryStore, "listPending">
    & Pick<InboxStore, "unreadCount" | "listInbox">;
  conversations: Pick<ConversationStore, "info" | "head" | "member">;
  controls: Pick<Controls, "list" | "disabled" | "recordAction">;
  registry: Pick<Registry, "inspect">;
  /** Detaches a connection from its session (the actor forgets it). */
  detach(connId: string): void;
  /** Cluster mode: the other nodes. */
  peers?: LookupPeers;
  onError?(message: string, error: unknown): void;
  now?: () => number;
}

/** The lookups; built by {@linkcode createLookups}. */
export interface Lookups {
  /** Everything known of a user (a user never seen gets empty lists, not an error). */
  user(id: string): Promise<UserLookup>;
  /** A conversation; `undefined` when there is no such conversation. */
  conversation(id: string): Promise<ConversationLookup | undefined>;
  /**
   * Closes the user's connections on this node (they reconnect with a fresh credential)
   * and records it in the controls audit log; answers how many were closed.
   */
  disconnect(id: string, actor: Actor, reason?: string): Promise<{ closed: number }>;
  /** What this node alone holds: what the other nodes of a cluster ask it for. */
  here: {
    connections(user: string): ConnectionInfo[];
    disconnect(user: string): number;
  };
}

/**
 * The pending acks of a user: the store's, updated by the live actor's (which holds the
 * attempts and next retry the store is told of later), the actor's own included.
 */
function mergePending(stored: PendingAck[], detail: ActorDetail | undefined): PendingAck[] {
  const bySeq = new Map(stored.map((p) => [p.seq, p]));
  const context = detail?.context;
  const live = typeof context === "object" && context !== null && Object.hasOwn(context, "pending")
    ? (context as { pending: unknown }).pending
    : undefined;
  if (typeof live === "object" && live !== null) {
    for (const p of Object.values(live as Record<string, PendingAck>)) {
      if (typeof p?.seq === "number" && typeof p.id === "string") bySeq.set(p.seq, p);
    }
  }
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

function actorState(detail: ActorDetail | undefined): ActorState | null {
  if (!detail) return null;
  return {
    status: detail.status,
    state: detail.state,
    ...(detail.timers ? { timers: detail.timers } : {}),
  };
}

/** Creates the lookups over the services. */
export function createLookups(deps: LookupsDeps): Lookups {
  const now = deps.now ?? Date.now;
  const { peers } = deps;
  const others = (user: string) => peers?.nodesOf(user).filter((n) => n !== deps.node) ?? [];

  const here = {
    connections: (user: string): ConnectionInfo[] =>
      deps.hub.ofUser(user).map((c) => ({
        id: c.id,
        transport: c.outlet.transport,
        ...(peers ? { node: deps.node } : {}),
      })),
    disconnect(user: string): number {
      const connections = deps.hub.ofUser(user);
      for (const conn of connections) {
        deps.detach(conn.id);
        try {
          conn.outlet.close(4001, "Disconnected by an operator");
        } catch {
          // Already closed.
        }
      }
      return connections.length;
    },
  };

  /** Each other node's answer, or nothing from a node that does not answer (logged). */
  async function fromPeers<T>(user: string, ask: (node: string) => Promise<T>): Promise<T[]> {
    const answers = await Promise.allSettled(others(user).map(ask));
    return answers.flatMap((a) => {
      if (a.status === "fulfilled") return [a.value];
      deps.onError?.("A node did not answer a lookup", a.reason);
      return [];
    });
  }

  const lookups: Lookups = {
    async user(id) {
      const at = now();
      const [entry, lastSeq, unread, stored, inbox] = await Promise.all([
        deps.directory.get(id),
        deps.store.lastSeq(id),
        deps.store.unreadCount(id, at),
        deps.store.listPending(id),
        deps.store.listInbox(id, { limit: LAST_DELIVERIES, unreadOnly: false, now: at }),
      ]);
      const connections = [
        ...here.connections(id),
        ...(await fromPeers(id, (node) => peers!.connectionsOn(node, id))).flat(),
      ];
      const counts = { ws: 0, sse: 0, poll: 0 };
      for (const c of connections) counts[c.transport]++;
      const subject: Subject = {
        id,
        roles: entry?.roles ?? [],
        structures: entry?.structures ?? [],
        ...(entry?.category ? { category: entry.category } : {}),
      };
      const head = deps.heads.position(id);
      const actor = deps.registry.inspect("user", id);
      const pending = mergePending(stored, actor);
      return {
        id,
        node: deps.node,
        directory: entry ?? null,
        connections,
        connection_counts: counts,
        stream: head ? { ...head, last_seq: lastSeq } : { last_seq: lastSeq, epoch: null },
        unread,
        pending: pending.slice(0, LOOKUP_LIMIT).map((p) => ({
          id: p.id,
          seq: p.seq,
          attempts: p.attempts,
          limit: p.limit,
          next_at: p.nextAt === undefined ? null : new Date(p.nextAt).toISOString(),
        })),
        pending_count: pending.length,
        controls: deps.controls.list().filter((c) => isActive(c, at) && covers(c.scope, subject)),
        disabled: deps.controls.disabled(subject).map((d) => ({
          feature: d.feature,
          reason: d.reason,
          scope: d.scope,
        })),
        last_deliveries: inbox.items.map((item) => ({
          id: item.id,
          seq: item.seq,
          type: item.type,
          at: new Date(item.at).toISOString(),
          read: item.readAt !== undefined,
          ...(item.envelope.metadata.topic ? { topic: item.envelope.metadata.topic } : {}),
        })),
        actor: actorState(actor),
      };
    },

    async conversation(id) {
      const info = await deps.conversations.info(id);
      if (!info) return undefined;
      const shown = info.members.slice(0, LOOKUP_LIMIT);
      const [head, states] = await Promise.all([
        deps.conversations.head(id),
        Promise.all(shown.map((user) => deps.conversations.member(id, user))),
      ]);
      const members: ConversationLookup["members"] = [];
      shown.forEach((user, i) => {
        const state = states[i];
        if (state) members.push({ id: user, ...state });
      });
      return {
        id,
        info,
        head: head ?? null,
        members,
        member_count: info.members.length,
        actor: actorState(deps.registry.inspect("conversation", id)),
      };
    },

    async disconnect(id, actor, reason) {
      // Recorded first: an action that happened is never missing from the log.
      await deps.controls.recordAction("disconnect", id, actor, reason);
      const elsewhere = await fromPeers(id, (node) => peers!.disconnectOn(node, id));
      return { closed: here.disconnect(id) + elsewhere.reduce((a, b) => a + b, 0) };
    },
    here,
  };
  peers?.serve(here);
  return lookups;
}
