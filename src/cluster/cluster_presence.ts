/**
 * Who is connected anywhere in the cluster. Each node tells the others over the bus when
 * a user's first connection to it opens and when their last one closes (the changes of a
 * moment travel together); a node that starts asks the others for everything they hold;
 * a node that leaves the membership (its heartbeat stopped) takes its users with it.
 *
 * Each node keeps the whole picture in memory, as a map from user to the nodes holding
 * them, so that asking whether someone is online costs no round trip.
 */

import type { Bus } from "./bus.ts";

/** The bus topic of presence changes. */
export const PRESENCE_TOPIC = "presence";

/** One bus message of presence. */
type PresenceMessage =
  | { kind: "change"; online: string[]; offline: string[] }
  | { kind: "sync?" }
  | { kind: "sync"; to: string; online: string[] };

/** Cluster-wide presence. */
export interface ClusterPresence {
  /** A user's first connection to this node opened (`true`), or their last one closed. */
  local(user: string, connected: boolean): void;
  /** Whether the user has a connection to any node. */
  isOnline(user: string): boolean;
  /** The nodes holding a connection of the user, this one included. */
  nodesOf(user: string): string[];
  stop(): void;
}

/** Dependencies of {@linkcode createClusterPresence}. */
export interface ClusterPresenceDeps {
  bus: Bus;
  /** The users connected to this node now (answered to a node that starts). */
  connected(): Iterable<string>;
  /** How often the membership is checked for nodes gone (default 2 s). */
  sweepMs?: number;
  onError(message: string, error: unknown): void;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

/** Creates cluster presence over `bus`, and asks the other nodes what they hold. */
export function createClusterPresence(deps: ClusterPresenceDeps): ClusterPresence {
  const { bus } = deps;
  const self = bus.node;
  // Users of the other nodes: user → the nodes holding them.
  const remote = new Map<string, Set<string>>();
  // Users connected here.
  const here = new Set<string>();
  // Changes of this turn: each user's last state.
  let changes = new Map<string, boolean>();

  function send(message: PresenceMessage) {
    bus.publish(PRESENCE_TOPIC, JSON.stringify(message)).catch((error) =>
      deps.onError("Announcing presence on the bus failed", error)
    );
  }

  function flush() {
    const message: PresenceMessage = { kind: "change", online: [], offline: [] };
    for (const [user, connected] of changes) {
      (connected ? message.online : message.offline).push(user);
    }
    changes = new Map();
    send(message);
  }

  function add(user: string, node: string) {
    let nodes = remote.get(user);
    if (!nodes) remote.set(user, nodes = new Set());
    nodes.add(node);
  }

  function removeFrom(user: string, node: string) {
    const nodes = remote.get(user);
    if (!nodes) return;
    nodes.delete(node);
    if (nodes.size === 0) remote.delete(user);
  }

  const stopHearing = bus.subscribe(PRESENCE_TOPIC, (message) => {
    if (message.from === self) return;
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(message.data);
    } catch (error) {
      return deps.onError("A presence message is not JSON", error);
    }
    if (parsed?.kind === "change") {
      for (const user of strings(parsed.online)) add(user, message.from);
      for (const user of strings(parsed.offline)) removeFrom(user, message.from);
    } else if (parsed?.kind === "sync?") {
      send({ kind: "sync", to: message.from, online: [...deps.connected()] });
    } else if (parsed?.kind === "sync" && parsed.to === self) {
      for (const user of strings(parsed.online)) add(user, message.from);
    }
  });

  // Nodes that left take their users with them.
  const sweep = setInterval(async () => {
    try {
      const alive = new Set((await bus.nodes()).map((n) => n.id));
      for (const [user, nodes] of remote) {
        for (const node of nodes) if (!alive.has(node)) nodes.delete(node);
        if (nodes.size === 0) remote.delete(user);
      }
    } catch (error) {
      deps.onError("Reading the cluster's nodes failed", error);
    }
  }, deps.sweepMs ?? 2_000);

  send({ kind: "sync?" });

  return {
    local(user, connected) {
      if (connected) here.add(user);
      else here.delete(user);
      if (changes.size === 0) queueMicrotask(flush);
      changes.set(user, connected);
    },
    isOnline: (user) => here.has(user) || remote.has(user),
    nodesOf(user) {
      const nodes = [...remote.get(user) ?? []];
      return here.has(user) ? [self, ...nodes] : nodes;
    },
    stop() {
      clearInterval(sweep);
      stopHearing();
    },
  };
}
