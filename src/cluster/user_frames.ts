/**
 * Frames for users wherever they are connected: a typing, receipt, membership or
 * presence frame goes to the given users' connections on every node of the cluster.
 *
 * One bus message per call, whatever the number of users; every node hands the frame to
 * the connections it holds for them. The sending node serves its own connections at
 * once (as one node alone does) and skips its own message when it comes back.
 *
 * @module
 */

import type { Hub } from "../realtime/hub.ts";
import type { Bus, BusMessage } from "./bus.ts";

/** The bus topic of user frames. */
export const USER_FRAMES_TOPIC = "user-frames";

/** Sends frames to users' connections across the cluster. */
export interface UserFrames {
  /** Sends `frame` to every connection of `users`, on every node. */
  toUsers(users: string[], frame: string): void;
  /** Stops serving other nodes' frames. */
  close(): void;
}

/** Options of {@linkcode createUserFrames}. */
export interface UserFramesOptions {
  /** Told when a frame could not be published, or a malformed one came in. */
  onError?(message: string, error: unknown): void;
}

/** Sends `frame` to this node's connections of `users`. */
function sendLocal(hub: Pick<Hub, "ofUser" | "send">, users: Iterable<string>, frame: string) {
  for (const user of users) {
    for (const conn of hub.ofUser(user)) hub.send(conn.id, frame);
  }
}

/**
 * Creates the cluster-wide sender of user frames on `bus`, serving `hub`'s connections.
 *
 * @example
 * ```ts
 * const frames = createUserFrames(bus, hub);
 * frames.toUsers(["ana", "ben"], encodeFrame({ type: "typing", conversation, user }));
 * ```
 */
export function createUserFrames(
  bus: Bus,
  hub: Pick<Hub, "ofUser" | "send">,
  options: UserFramesOptions = {},
): UserFrames {
  const onError = options.onError ?? (() => {});

  function onMessage(message: BusMessage) {
    if (message.from === bus.node) return; // served when it was sent
    let parsed: unknown;
    try {
      parsed = JSON.parse(message.data);
    } catch (error) {
      onError("A malformed user frame came over the bus", error);
      return;
    }
    const m = typeof parsed === "object" && parsed !== null
      ? parsed as Record<string, unknown>
      : {};
    if (!Array.isArray(m.users) || typeof m.frame !== "string") {
      onError("A malformed user frame came over the bus", new Error(message.data.slice(0, 200)));
      return;
    }
    const users = m.users.filter((u): u is string => typeof u === "string");
    sendLocal(hub, users, m.frame);
  }

  const unsubscribe = bus.subscribe(USER_FRAMES_TOPIC, onMessage);

  return {
    toUsers(users, frame) {
      if (users.length === 0) return;
      sendLocal(hub, users, frame);
      bus.publish(USER_FRAMES_TOPIC, JSON.stringify({ users, frame })).catch((error) =>
        onError("Cannot publish a user frame to the other nodes", error)
      );
    },
    close: unsubscribe,
  };
}
