/**
 * Kill switches across the cluster: a node that sees its switches change announces it on
 * the bus, and every node hearing of it re-reads them at once (the periodic re-read stays
 * as the fallback when the bus loses a message).
 */

import type { Controls } from "../controls/controls.ts";
import type { Bus } from "./bus.ts";

/** The bus topic on which nodes announce a change of kill switches. */
export const CONTROLS_TOPIC = "controls";

/** Shares `controls`' changes over `bus`; answers the function that stops sharing. */
export function shareControls(
  controls: Controls,
  bus: Bus,
  onError: (message: string, error: unknown) => void,
): () => void {
  // A re-read that finds nothing new announces nothing: the echo stops at each node.
  const stopAnnouncing = controls.onChange(() => {
    bus.publish(CONTROLS_TOPIC, "changed").catch((e) => onError("Bus publish failed", e));
  });
  const stopHearing = bus.subscribe(CONTROLS_TOPIC, () => {
    controls.refresh().catch((e) => onError("Re-reading the kill switches failed", e));
  });
  return () => {
    stopAnnouncing();
    stopHearing();
  };
}
