/**
 * What a node adds to its services in cluster mode, wired in one place: live items and acks
 * over the bus, the stream heads following the store, cluster-wide presence, frames to
 * users held by other nodes, one owner per conversation, wake-ups of the singletons and
 * the janitor of unfinished fan-outs. `services.ts` asks it for each piece where the
 * one-node wiring would put its own; one node alone never builds it.
 */

import type { Registry } from "../../actors/registry.ts";
import type { LiveDelivery } from "../delivery/live_delivery.ts";
import type { FollowMode } from "../delivery/stream_heads.ts";
import type { ConversationActors } from "../messaging/conversation_actors.ts";
import type { ConversationStore } from "../messaging/conversation_store.ts";
import type { HistoryPeers } from "../ops/cluster_history.ts";
import type { ConnectionInfo, LookupPeers } from "../ops/lookups.ts";
import type { Hub } from "../realtime/hub.ts";
import type { Store, StreamItem } from "../store/store.ts";
import type { Bus } from "./bus.ts";
import { createBusRpc } from "./bus_rpc.ts";
import { type ClusterDelivery, createClusterDelivery, followStore } from "./cluster_delivery.ts";
import type { ClusterEpoch } from "./cluster_epoch.ts";
import { type ClusterConversations, createClusterConversations } from "./cluster_conversations.ts";
import { type ClusterPresence, createClusterPresence } from "./cluster_presence.ts";
import { createFanoutJanitor, type FanoutJanitor } from "./fanout_janitor.ts";
import { createHistoryPeers } from "./history_peers.ts";
import type { Leases } from "./leases.ts";
import { createOwnership } from "./ownership.ts";
import type { Singletons } from "./singletons.ts";
import { createUserFrames } from "./user_frames.ts";
import { createWakeups, type Wake } from "./wakeups.ts";

/** What {@linkcode createClusterNode} is built from. */
export interface ClusterNodeDeps {
  bus: Bus;
  leases: Leases;
  singletons: Singletons;
  epoch: ClusterEpoch;
  registry: Registry;
  hub: Hub;
  store: Store;
  conversations: ConversationStore;
  leaseTtlMs: number;
  recentWindowMs: number;
  /** How long an idle actor lives: a conversation's lease is kept at least as long. */
  actorIdleMs: number;
  /** Resumes unfinished fan-outs (the publisher's): what the janitor hands on. */
  resumeFanouts(ids: string[]): Promise<unknown>;
  onError(message: string, error: unknown): void;
}

/** The cluster pieces of one node's services. */
export interface ClusterNode {
  presence: ClusterPresence;
  /** Sends a frame to the connections of `users` on every node. */
  toUsers(users: string[], frame: string): void;
  wake: Wake;
  /** How the stream heads follow the store; `renderItem` renders conversation items. */
  follow(renderItem: (user: string, item: StreamItem) => Promise<string | undefined>): FollowMode;
  /** Live delivery to every node over this node's; `acked` tells the local actors of acks. */
  live(local: LiveDelivery, acked: (user: string, id: string) => void): ClusterDelivery;
  /** The conversation actors, each with one owner node, over this node's own. */
  conversations(local: ConversationActors): ClusterConversations;
  /**
   * The janitor that takes over the unfinished fan-outs of events and conversations (run
   * by one node at a time).
   */
  janitor: FanoutJanitor;
  /** How the ops lookups reach the other nodes, and answer them. */
  lookupPeers: LookupPeers;
  /** How the ops charts gather the other nodes' histories, and answer them. */
  historyPeers: HistoryPeers;
  /** Stops listening to the bus and gives the conversations' leases up. */
  close(): Promise<void>;
}

/** The connections a node answered, kept to their known shape. */
function connectionsOf(value: unknown): ConnectionInfo[] {
  if (!Array.isArray(value)) return [];
  return value.filter((c): c is ConnectionInfo =>
    typeof c?.id === "string" && ["ws", "sse", "poll"].includes(c?.transport)
  );
}

/** Builds the cluster pieces of a node's services. */
export function createClusterNode(deps: ClusterNodeDeps): ClusterNode {
  const { bus, hub, onError } = deps;
  const presence = createClusterPresence({
    bus,
    connected: () => new Set(hub.all().map((c) => c.user)),
    onError,
  });
  const frames = createUserFrames(bus, hub, { onError });
  const wakeups = createWakeups(bus, deps.registry, onError);
  const rpc = createBusRpc(bus, { onError });
  const ownership = createOwnership({
    leases: deps.leases,
    bus,
    kind: "conversation",
    ttlMs: deps.leaseTtlMs,
    idleMs: deps.actorIdleMs,
    onError,
  });
  const asUser = (args: unknown) => {
    if (typeof args !== "string") throw new Error("A lookup names a user");
    return args;
  };
  let live: ClusterDelivery | undefined;
  let conversations: ClusterConversations | undefined;

  return {
    presence,
    toUsers: frames.toUsers,
    wake: wakeups.wake,
    follow: (renderItem) =>
      followStore({
        store: deps.store,
        renderItem,
        epoch: deps.epoch.current,
        recentWindowMs: deps.recentWindowMs,
      }),
    live: (local, acked) => live = createClusterDelivery({ bus, local, acked, onError }),
    conversations: (local) =>
      conversations = createClusterConversations({
        local,
        ownership,
        rpc,
        bus,
        store: deps.conversations,
        registry: deps.registry,
        onError,
      }),
    janitor: createFanoutJanitor({
      work: [{
        name: "event fan-outs",
        unfinished: () => deps.store.unfinishedFanouts(),
        resume: deps.resumeFanouts,
      }, {
        name: "conversation fan-outs",
        unfinished: () => deps.conversations.unfinished(),
        // Set when the services are built, before the janitor starts.
        resume: (ids) => conversations?.resumeUnfinished(ids) ?? Promise.resolve(0),
      }],
      intervalMs: 5_000,
      onError,
    }),
    lookupPeers: {
      nodesOf: presence.nodesOf,
      connectionsOn: async (node, user) =>
        connectionsOf(await rpc.call(node, "ops.connections", user)),
      disconnectOn: async (node, user) => {
        const closed = await rpc.call(node, "ops.disconnect", user);
        return typeof closed === "number" ? closed : 0;
      },
      serve(here) {
        rpc.handle("ops.connections", (args) => Promise.resolve(here.connections(asUser(args))));
        rpc.handle("ops.disconnect", (args) => Promise.resolve(here.disconnect(asUser(args))));
      },
    },
    historyPeers: createHistoryPeers(bus, rpc),
    async close() {
      conversations?.close();
      await ownership.close();
      rpc.close();
      frames.close();
      wakeups.stop();
      live?.stop();
      presence.stop();
    },
  };
}
