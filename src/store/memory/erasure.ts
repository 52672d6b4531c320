/** Erasure and export of a user's deliveries in memory. */

import type { Erased, ErasureStore, ExportedItem } from "../store.ts";
import { copy, type MemoryState, userState } from "./_state.ts";

/** Creates the erasure port over `state`. */
export function createMemoryErasureStore(state: MemoryState): ErasureStore {
  function eraseUser(user: string): Promise<Erased> {
    const found = state.users.get(user);
    state.mail?.eraseUser(user);
    for (const [key, letter] of state.deadLetters) {
      if (letter.user === user) state.deadLetters.delete(key);
    }
    if (!found) return Promise.resolve({ streamItems: 0, pendingAcks: 0 });
    for (const item of found.items.values()) state.events.get(item.id)?.targets.delete(user);
    // Everything goes but the last seq, as the KV adapter keeps it: a seq never names two
    // items, and the user's devices may still hold positions in the erased stream.
    state.users.delete(user);
    userState(state, user).seq = found.seq;
    return Promise.resolve({ streamItems: found.items.size, pendingAcks: found.pending.size });
  }

  function exportItems(
    user: string,
    { after, limit }: { after: number; limit: number },
  ): Promise<ExportedItem[]> {
    const out: ExportedItem[] = [];
    for (const item of state.users.get(user)?.items.values() ?? []) {
      if (item.seq <= after) continue;
      if (out.length >= limit) break;
      const delivery = state.events.get(item.id)?.targets.get(user);
      out.push(copy(delivery ? { item, delivery } : { item }));
    }
    return Promise.resolve(out);
  }

  return { eraseUser, exportItems };
}
