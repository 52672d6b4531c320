/**
 * The cluster bus: how the nodes of one relais deployment tell each other things that are
 * not worth a write to the store — a frame for a connection held by another node, a
 * change of kill switches, a user's presence. Durability stays with the store: a message
 * the bus loses (a node that was down) is made good by what the store holds (clients
 * resume by position, nodes re-read controls), so the bus carries live traffic only.
 *
 * Messages go to a topic; every node subscribed to it receives each message once, the
 * publishing node included, in the order each publisher sent them. One node alone uses
 * the in-process bus ({@linkcode createLocalBus}); nodes sharing a Redis use
 * `redis_bus.ts`, whose membership also says which nodes are alive.
 */

/** One message as a subscriber receives it. */
export interface BusMessage {
  topic: string;
  /** The node that published it. */
  from: string;
  data: string;
}

/** A node of the cluster, as its last heartbeat described it. */
export interface BusNode {
  id: string;
  /** When its last heartbeat was written (epoch ms). */
  seenAt: number;
}

/** The bus port. */
export interface Bus {
  /** This node's id. */
  readonly node: string;
  /** Sends `data` to every subscriber of `topic`, on every node. */
  publish(topic: string, data: string): Promise<void>;
  /** Calls `handler` for each message of `topic` until the returned function is called. */
  subscribe(topic: string, handler: (message: BusMessage) => void): () => void;
  /** The nodes alive now (this one included). */
  nodes(): Promise<BusNode[]>;
  /**
   * Resolves once this node reads the bus: every message published from then on, by any
   * node, reaches its subscribers (what was published before does not).
   */
  ready(): Promise<void>;
  close(): Promise<void>;
}

/** Keeps handlers by topic and hands each message to those of its topic. */
export function createTopicTable() {
  const handlers = new Map<string, Set<(message: BusMessage) => void>>();
  return {
    add(topic: string, handler: (message: BusMessage) => void): () => void {
      let set = handlers.get(topic);
      if (!set) handlers.set(topic, set = new Set());
      set.add(handler);
      return () => {
        set.delete(handler);
        if (set.size === 0 && handlers.get(topic) === set) handlers.delete(topic);
      };
    },
    /** Hands `message` to its topic's handlers; one that throws does not stop the others. */
    dispatch(message: BusMessage, onError: (error: unknown) => void): void {
      const set = handlers.get(message.topic);
      if (!set) return;
      for (const handler of [...set]) {
        try {
          handler(message);
        } catch (error) {
          onError(error);
        }
      }
    },
    has: (topic: string) => handlers.has(topic),
  };
}

/** The bus of one node alone: messages go straight to this process's subscribers. */
export function createLocalBus(
  node = "local",
  onError: (message: string, error: unknown) => void = () => {},
): Bus {
  const table = createTopicTable();
  let closed = false;
  return {
    node,
    publish(topic, data) {
      if (closed) return Promise.reject(new Error("The bus is closed"));
      // Delivered on the next turn, as a remote message would be: a publisher never runs
      // its own handlers in the middle of what it is doing.
      queueMicrotask(() =>
        table.dispatch({ topic, from: node, data }, (e) => onError("A bus handler failed", e))
      );
      return Promise.resolve();
    },
    subscribe: (topic, handler) => table.add(topic, handler),
    nodes: () => Promise.resolve([{ id: node, seenAt: Date.now() }]),
    ready: () => Promise.resolve(),
    close() {
      closed = true;
      return Promise.resolve();
    },
  };
}
