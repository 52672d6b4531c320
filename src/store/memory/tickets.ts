/** Single-use connect tickets in memory. */

import type { TicketRecord, TicketStore } from "../ticket_store.ts";
import { copy, type MemoryState } from "./_state.ts";

/** How long a ticket is kept past its expiry, as the KV adapter's key expiry. */
const KEPT_PAST_EXPIRY_MS = 60_000;

/** Creates the ticket port over `state`. */
export function createMemoryTicketStore(state: MemoryState): TicketStore {
  function putTicket(id: string, record: TicketRecord) {
    // Tickets nobody took are dropped once well past their expiry, so memory stays bounded.
    const now = state.now();
    for (const [key, kept] of state.tickets) {
      if (kept.expiresAt + KEPT_PAST_EXPIRY_MS < now) state.tickets.delete(key);
    }
    state.tickets.set(id, copy(record));
    return Promise.resolve();
  }

  function takeTicket(id: string): Promise<TicketRecord | undefined> {
    const record = state.tickets.get(id);
    state.tickets.delete(id);
    return Promise.resolve(record);
  }

  return { putTicket, takeTicket };
}
