/**
 * New work for a cluster singleton (mail queued, pushes queued): the node that queued it
 * tells every node over the bus, and the node running the singleton wakes it. No node
 * starts a singleton to tell it something: which node runs it is the leases' decision.
 */

import type { Registry } from "../../actors/registry.ts";
import type { Bus } from "./bus.ts";

/** The bus topic of wake-ups. */
export const WAKE_TOPIC = "wake";

/** The singletons a wake-up may name. */
const WAKEABLE = new Set(["mailer", "push"]);

/** Tells a singleton, wherever it runs, that work is due at `event.dueAt`. */
export type Wake = (
  kind: "mailer" | "push",
  id: string,
  event: { type: string; dueAt: number },
) => void;

/** Wake-ups over `bus`: the answer sends one; each node passes them to its live singletons. */
export function createWakeups(
  bus: Bus,
  registry: Pick<Registry, "peek">,
  onError: (message: string, error: unknown) => void,
): { wake: Wake; stop(): void } {
  const stop = bus.subscribe(WAKE_TOPIC, (message) => {
    let parsed: { kind?: unknown; id?: unknown; event?: { type?: unknown } };
    try {
      parsed = JSON.parse(message.data);
    } catch (error) {
      return onError("A wake-up on the bus is not JSON", error);
    }
    const { kind, id, event } = parsed ?? {};
    if (
      typeof kind !== "string" || !WAKEABLE.has(kind) || typeof id !== "string" ||
      typeof event?.type !== "string"
    ) {
      return onError("A wake-up on the bus has an unknown shape", message.data.slice(0, 200));
    }
    registry.peek(kind as "mailer" | "push", id)?.send(event);
  });
  return {
    wake(kind, id, event) {
      bus.publish(WAKE_TOPIC, JSON.stringify({ kind, id, event })).catch((error) =>
        onError(`Waking the ${kind} failed`, error)
      );
    },
    stop,
  };
}
