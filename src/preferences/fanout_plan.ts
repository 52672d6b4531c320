/**
 * Preferences at fan-out time: for each target of a NOTIFICATION, whether it shows
 * in-app and when its email is to be decided on. The mail task is written in the same
 * commit as the stream item, so an accepted notification never loses its email.
 */

import type { Envelope } from "../schemas/envelope.ts";
import type { FanoutPlanner } from "../store/store.ts";
import { chooseChannels, isCritical } from "./preferences.ts";
import type { PreferencesStore } from "./preferences_store.ts";

/** Options of {@linkcode createFanoutPlans}. */
export interface FanoutPlanOptions {
  preferences: PreferencesStore;
  /** How long an unread notification waits before it is mailed. */
  graceMs: number;
}

/**
 * Returns, per envelope, the planner of its fan-out, or `undefined` when preferences do
 * not apply (only NOTIFICATIONs are subject to them).
 */
export function createFanoutPlans(
  options: FanoutPlanOptions,
): (envelope: Envelope) => FanoutPlanner | undefined {
  return (envelope) => {
    if (envelope.metadata.type !== "NOTIFICATION") return undefined;
    const urgent = envelope.metadata.priority === "HIGH" || isCritical(envelope.metadata);
    return async (users, event) => {
      const prefs = await options.preferences.getMany(users);
      return users.map((_, i) => {
        const choice = chooseChannels(envelope, prefs[i]);
        // Not shown in-app: nothing to wait for before mailing it.
        const wait = urgent || !choice.inapp ? 0 : options.graceMs;
        return {
          quiet: !choice.inapp,
          ...(choice.email ? { mailAt: event.acceptedAt + wait } : {}),
        };
      });
    };
  };
}
