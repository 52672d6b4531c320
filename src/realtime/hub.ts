/**
 * Live connections by id. Actors only know connection ids; the hub owns the sockets.
 *
 * A connection that is catching up (replaying its stream) buffers live items and
 * flushes those its replay did not cover, so a client sees its stream in order.
 */

/** What a transport gives the hub to reach one client. */
export interface Outlet {
  transport: "ws" | "sse" | "poll";
  send(text: string): void;
  close(code: number, reason: string): void;
}

/** One live connection. */
export interface Connection {
  id: string;
  user: string;
  outlet: Outlet;
  /** Live items held back while the connection replays, as `[seq, frame]`. */
  held: [number, string][] | undefined;
}

/** The hub's interface. */
export interface Hub {
  add(id: string, user: string, outlet: Outlet): Connection;
  remove(id: string): void;
  get(id: string): Connection | undefined;
  /** Sends a frame that belongs to the user's stream (held back during a replay). */
  sendItem(id: string, seq: number, frame: string): boolean;
  /** Sends a frame outside the stream order (pong, errors, redeliveries). */
  send(id: string, frame: string): boolean;
  /** Ends a replay: sends the held items newer than `replayedUpTo`. */
  release(id: string, replayedUpTo: number): void;
  /** Connections of a user. */
  ofUser(user: string): Connection[];
  size(): number;
}

/** Creates an empty hub. */
export function createHub(): Hub {
  const connections = new Map<string, Connection>();
  const byUser = new Map<string, Set<string>>();

  function send(id: string, frame: string) {
    const conn = connections.get(id);
    if (!conn) return false;
    try {
      conn.outlet.send(frame);
      return true;
    } catch {
      return false;
    }
  }

  return {
    add(id, user, outlet) {
      const conn: Connection = { id, user, outlet, held: [] };
      connections.set(id, conn);
      let set = byUser.get(user);
      if (!set) byUser.set(user, set = new Set());
      set.add(id);
      return conn;
    },
    remove(id) {
      const conn = connections.get(id);
      if (!conn) return;
      connections.delete(id);
      const set = byUser.get(conn.user);
      set?.delete(id);
      if (set?.size === 0) byUser.delete(conn.user);
    },
    get: (id) => connections.get(id),
    sendItem(id, seq, frame) {
      const conn = connections.get(id);
      if (!conn) return false;
      if (conn.held) {
        conn.held.push([seq, frame]);
        return true;
      }
      return send(id, frame);
    },
    send,
    release(id, replayedUpTo) {
      const conn = connections.get(id);
      if (!conn?.held) return;
      const held = conn.held.sort((a, b) => a[0] - b[0]);
      conn.held = undefined;
      let last = replayedUpTo;
      for (const [seq, frame] of held) {
        if (seq <= last) continue;
        last = seq;
        send(id, frame);
      }
    },
    ofUser: (user) => [...(byUser.get(user) ?? [])].map((id) => connections.get(id)!),
    size: () => connections.size,
  };
}
