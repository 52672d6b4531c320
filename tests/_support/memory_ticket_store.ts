/** An in-memory {@linkcode TicketStore} for tests. */

import type { TicketRecord, TicketStore } from "../../src/store/ticket_store.ts";

/** Keeps tickets in a Map; `takeTicket` is atomic because it never awaits before deleting. */
export class MemoryTicketStore implements TicketStore {
  /** The stored records by id, exposed so tests can inspect what was written. */
  readonly records = new Map<string, TicketRecord>();
  /** How many times `takeTicket` was called. */
  takes = 0;

  /** Stores a deep copy, as a real store would serialise it. */
  putTicket(id: string, record: TicketRecord): Promise<void> {
    this.records.set(id, structuredClone(record));
    return Promise.resolve();
  }

  /** Removes and returns the record, once. */
  takeTicket(id: string): Promise<TicketRecord | undefined> {
    this.takes++;
    const record = this.records.get(id);
    this.records.delete(id);
    return Promise.resolve(record);
  }
}
