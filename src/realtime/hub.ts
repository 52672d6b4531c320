/**
 * Live connections by id. Actors only know connection ids; the hub owns the sockets.
 *
 * A connection that is catching up (replaying its stream) buffers live items and
 * flushes those its replay did not cover, so a client sees its stream in order.
 */

/** What a transport gives the hub to reach one client. */
export interface Outlet {
  transport: "ws" | "sse" | "poll";
  /**
   * Sends one encoded frame. `seq` is given when the frame is the user's stream position
   * `seq`, sent in order (SSE writes it as `id:`, poll answers it as the next `after`).
   */
  send(text: string, seq?: number): void;
  close(code: number, reason: string): void;
  /** The client showed activity through another channel (an HTTP action naming the session). */
  activity?(): void;
  /**
   * Bytes accepted by `send` but not yet handed to the network (a WebSocket's
   * `bufferedAmount`); a client that stops reading makes it grow.
   */
  bufferedAmount?(): number;
}

/** Options of {@linkcode createHub}. */
export interface HubOptions {
  /**
   * A connection whose outlet has more than this many bytes waiting is cut off with 4008
   * instead of being sent more: a client that stops reading never holds the server's
   * memory hostage nor slows anyone else (default: unbounded).
   */
  maxBufferedBytes?: number;
  /**
   * Decides what reaches a connection: returns the frame to send (the same, or a
   * rewritten one) or `undefined` to drop it (kill switches). Absent: everything passes.
   */
  filter?(conn: Connection, frame: string): string | undefined;
  /**
   * Called when a connection is cut off for a full buffer, to detach it everywhere
   * (default: only the hub forgets it). The outlet is closed already.
   */
  onOverflow?(conn: Connection): void;
  /** Told when a user's first connection opens (`true`) and their last one closes. */
  onUser?(user: string, connected: boolean): void;
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
  /**
   * Sends a frame outside the live stream order (pong, errors, redeliveries); `seq` marks
   * a frame that is the stream's next position (replay).
   */
  send(id: string, frame: string, seq?: number): boolean;
  /** Ends a replay: sends the held items newer than `replayedUpTo`. */
  release(id: string, replayedUpTo: number): void;
  /** Connections of a user. */
  ofUser(user: string): Connection[];
  /** Every live connection. */
  all(): Connection[];
  size(): number;
}

/** Creates an empty hub. */
export function createHub(options: HubOptions = {}): Hub {
  const connections = new Map<string, Connection>();
  // A user's connection id, or a set of them when there are several: most users have one,
  // and a set per user would cost more than the entry holding it.
  const byUser = new Map<string, string | Set<string>>();
  const maxBuffered = options.maxBufferedBytes ?? Infinity;

  function remove(id: string) {
    const conn = connections.get(id);
    if (!conn) return;
    connections.delete(id);
    const ids = byUser.get(conn.user);
    if (ids === id) {
      byUser.delete(conn.user);
      options.onUser?.(conn.user, false);
    } else if (typeof ids === "object") {
      ids.delete(id);
      if (ids.size === 1) byUser.set(conn.user, ids.values().next().value!);
      else if (ids.size === 0) {
        byUser.delete(conn.user);
        options.onUser?.(conn.user, false);
      }
    }
  }

  function send(id: string, text: string, seq?: number) {
    const conn = connections.get(id);
    if (!conn) return false;
    const frame = options.filter ? options.filter(conn, text) : text;
    if (frame === undefined) return false;
    if ((conn.outlet.bufferedAmount?.() ?? 0) > maxBuffered) {
      // The client stopped reading: cut it off rather than queue without bound. It
      // resumes from its last seq when it reconnects, and is told what it missed.
      try {
        conn.outlet.close(4008, "Too slow: outgoing buffer full");
      } catch { /* already closing */ }
      if (options.onOverflow) options.onOverflow(conn);
      else remove(id);
      return false;
    }
    try {
      conn.outlet.send(frame, seq);
      return true;
    } catch {
      return false;
    }
  }

  return {
    add(id, user, outlet) {
      const conn: Connection = { id, user, outlet, held: [] };
      connections.set(id, conn);
      const ids = byUser.get(user);
      if (ids === undefined) {
        byUser.set(user, id);
        options.onUser?.(user, true);
      } else if (typeof ids === "string") byUser.set(user, new Set([ids, id]));
      else ids.add(id);
      return conn;
    },
    remove,
    get: (id) => connections.get(id),
    sendItem(id, seq, frame) {
      const conn = connections.get(id);
      if (!conn) return false;
      if (conn.held) {
        conn.held.push([seq, frame]);
        return true;
      }
      return send(id, frame, seq);
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
        send(id, frame, seq);
      }
    },
    ofUser(user) {
      const ids = byUser.get(user);
      if (ids === undefined) return [];
      if (typeof ids === "string") return [connections.get(ids)!];
      return [...ids].map((id) => connections.get(id)!);
    },
    all: () => [...connections.values()],
    size: () => connections.size,
  };
}
