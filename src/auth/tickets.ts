/**
 * Single-use connect tickets: a short-lived stand-in for a user's credential where a
 * client cannot set headers (WebSocket `hello`, SSE and poll `?ticket=`).
 *
 * The store only ever sees the SHA-256 of a ticket, so a leaked store cannot be replayed.
 */

import type { TicketStore } from "../store/ticket_store.ts";
import type { UserPrincipal } from "./principal.ts";
import { encodeBase64Url, encodeHex, sha256 } from "./_encoding.ts";

/** 32 random bytes in unpadded base64url. */
const TICKET_SHAPE = /^[A-Za-z0-9_-]{43}$/;

/** Options of {@linkcode createTickets}. */
export interface TicketsOptions {
  /** How long a ticket stays redeemable, in milliseconds (default 60 000). */
  ttlMs?: number;
  /** The clock, in epoch milliseconds. */
  now?: () => number;
}

/** A freshly issued ticket, as answered by `POST /v1/connect-tickets`. */
export interface IssuedTicket {
  ticket: string;
  /** ISO 8601 instant after which the ticket is refused. */
  expires_at: string;
}

/** Issues and redeems connect tickets; built by {@linkcode createTickets}. */
export interface Tickets {
  /** Issues a ticket standing for `user`. */
  issue(user: UserPrincipal): Promise<IssuedTicket>;
  /** The ticket's user, once; `undefined` if unknown, already used or expired. */
  redeem(ticket: string): Promise<UserPrincipal | undefined>;
}

/** The store id of a ticket: its SHA-256 in hex. */
async function ticketId(ticket: string): Promise<string> {
  return encodeHex(await sha256(ticket));
}

/** Builds the ticket issuer on a {@linkcode TicketStore}. */
export function createTickets(store: TicketStore, options: TicketsOptions = {}): Tickets {
  const ttlMs = options.ttlMs ?? 60_000;
  const now = options.now ?? Date.now;
  return {
    async issue(user) {
      const ticket = encodeBase64Url(crypto.getRandomValues(new Uint8Array(32)));
      // A ticket never outlives the credential it was issued for.
      const expiresAt = Math.min(now() + ttlMs, user.expiresAt ?? Infinity);
      // The identity as it was verified, directory memberships included.
      const principal: UserPrincipal = structuredClone(user);
      await store.putTicket(await ticketId(ticket), { principal, expiresAt });
      return { ticket, expires_at: new Date(expiresAt).toISOString() };
    },
    async redeem(ticket) {
      if (!TICKET_SHAPE.test(ticket)) return undefined;
      const record = await store.takeTicket(await ticketId(ticket));
      if (!record) return undefined;
      const at = now();
      if (at >= record.expiresAt) return undefined;
      if (record.principal.expiresAt !== undefined && at >= record.principal.expiresAt) {
        return undefined;
      }
      return record.principal;
    },
  };
}
