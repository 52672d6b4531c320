/** Single-use connect tickets on Deno KV. */

import * as keys from "../keys.ts";
import type { TicketRecord, TicketStore } from "../ticket_store.ts";

/** Creates the ticket port on an open Deno KV handle. */
export function createKvTicketStore(kv: Deno.Kv): TicketStore {
  async function putTicket(id: string, record: TicketRecord) {
    await kv.set(keys.ticketKey(id), record, {
      expireIn: Math.max(1000, record.expiresAt - Date.now()) + 60_000,
    });
  }

  async function takeTicket(id: string): Promise<TicketRecord | undefined> {
    const entry = await kv.get<TicketRecord>(keys.ticketKey(id));
    if (!entry.value) return undefined;
    const res = await kv.atomic().check(entry).delete(keys.ticketKey(id)).commit();
    return res.ok ? entry.value : undefined;
  }

  return { putTicket, takeTicket };
}
