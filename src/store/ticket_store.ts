/** The part of the store that keeps single-use connect tickets. */

import type { UserPrincipal } from "../auth/principal.ts";

/** A stored connect ticket. */
export interface TicketRecord {
  principal: UserPrincipal;
  /** Epoch milliseconds after which the ticket is refused. */
  expiresAt: number;
}

/** Keeps tickets by an opaque id (a hash of the ticket, never the ticket itself). */
export interface TicketStore {
  /** Stores a ticket record. */
  putTicket(id: string, record: TicketRecord): Promise<void>;
  /**
   * Removes and returns a ticket record, exactly once across concurrent callers;
   * `undefined` if absent or already taken.
   */
  takeTicket(id: string): Promise<TicketRecord | undefined>;
}
