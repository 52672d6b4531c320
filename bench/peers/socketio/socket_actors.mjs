/**
 * One XState actor per socket, for the bare peers' floor of the design's rule (every item
 * reaches a user through their actor): `bench/peers/bare_ws.ts` on Deno (which resolves
 * `xstate` through the project's import map) and `bare.mjs` here on Node (through this
 * folder's `node_modules`, the same pinned version), each with `BARE_ACTORS=1`.
 *
 * Each actor is of the cheapest machine there is: a frame takes one transition with one
 * action and no `assign`, and a final state ends it with its socket. Actors are children
 * of hosts sharing an XState system among 32, as relais's user actors are.
 */

import { createActor, fromCallback, setup } from "xstate";

/**
 * The actors of a peer's sockets.
 *
 * @template S the socket type
 * @param {(socket: S, frame: string) => void} send writes a frame to a socket
 */
export function socketActors(send) {
  let sent = 0;
  const machine = setup({
    actions: {
      send: ({ context, event }) => {
        if (event.type !== "push") return;
        send(context.socket, event.frame);
        sent++;
      },
    },
  }).createMachine({
    context: ({ input }) => ({ socket: input.socket }),
    initial: "open",
    states: {
      open: { on: { push: { actions: "send" }, stop: { target: "closed" } } },
      closed: { type: "final" },
    },
  });
  /** @type {import("xstate").AnyActorRef | undefined} */
  let host;
  let hosted = 0;
  /** @type {Map<S, import("xstate").AnyActorRef>} */
  const actors = new Map();
  return {
    /**
     * Starts `socket`'s actor, once.
     * @param {S} socket
     */
    open(socket) {
      if (actors.has(socket)) return;
      if (!host || hosted >= 32) {
        host = createActor(fromCallback(() => {})).start();
        hosted = 0;
      }
      hosted++;
      actors.set(socket, createActor(machine, { parent: host, input: { socket } }).start());
    },
    /**
     * Sends `frame` to `socket` through its actor (nothing when it has none).
     * @param {S} socket
     * @param {string} frame
     */
    push(socket, frame) {
      actors.get(socket)?.send({ type: "push", frame });
    },
    /**
     * Ends `socket`'s actor.
     * @param {S} socket
     */
    close(socket) {
      actors.get(socket)?.send({ type: "stop" });
      actors.delete(socket);
    },
    /** Live actors, and the frames they sent. */
    counts: () => ({ actors: actors.size, sentByActors: sent }),
  };
}
