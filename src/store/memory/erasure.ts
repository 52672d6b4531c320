/** Erasure of a user's deliveries in memory. */

import type { Erased, ErasureStore } from "../store.ts";
import type { MemoryState } from "./_state.ts";

/** Creates the erasure port over `state`. */
export function createMemoryErasureStore(state: MemoryState): ErasureStore {
  function eraseUser(user: string): Promise<Erased> {
    const found = state.users.get(user);
    state.mail?.eraseUser(user);
    if (!found) return Promise.resolve({ streamItems: 0, pendingAcks: 0 });
    for (const item of found.items.values()) state.events.get(item.id)?.targets.delete(user);
    // The whole state goes, the seq with it, as the KV adapter deletes the user's keys.
    state.users.delete(user);
    return Promise.resolve({ streamItems: found.items.size, pendingAcks: found.pending.size });
  }

  return { eraseUser };
}
