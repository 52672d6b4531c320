import assert from "node:assert/strict";
import { createTickets } from "../../src/auth/tickets.ts";
import type { UserPrincipal } from "../../src/auth/principal.ts";
import { createKvStore } from "../../src/store/kv_store.ts";
import type { TicketStore } from "../../src/store/ticket_store.ts";
import { NOW } from "../_support/auth.ts";
import { MemoryTicketStore } from "../_support/memory_ticket_store.ts";

const alice: UserPrincipal = {
  kind: "user",
  id: "alice",
  roles: ["ROLE_STUDENT"],
  structures: ["univ-x"],
  expiresAt: NOW + 3_600_000,
};

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The ticket contract, run against every TicketStore adapter. */
function ticketContract(name: string, open: () => Promise<TicketStore & Disposable>) {
  Deno.test(`tickets on ${name} redeem a ticket once and only once`, async () => {
    using store = await open();
    const tickets = createTickets(store, { now: () => NOW });

    const { ticket, expires_at } = await tickets.issue(alice);
    const first = await tickets.redeem(ticket);
    const second = await tickets.redeem(ticket);

    assert.match(ticket, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(expires_at, new Date(NOW + 60_000).toISOString());
    assert.deepEqual(first, alice);
    assert.equal(second, undefined);
  });

  Deno.test(`tickets on ${name} let only one of five concurrent redeems win`, async () => {
    using store = await open();
    const tickets = createTickets(store, { now: () => NOW });
    const { ticket } = await tickets.issue(alice);

    const results = await Promise.all(Array.from({ length: 5 }, () => tickets.redeem(ticket)));

    assert.equal(results.filter((r) => r?.id === "alice").length, 1);
    assert.equal(results.filter((r) => r === undefined).length, 4);
  });

  Deno.test(`tickets on ${name} refuse a ticket after its time to live`, async () => {
    using store = await open();
    let clock = NOW;
    const tickets = createTickets(store, { ttlMs: 60_000, now: () => clock });
    const early = await tickets.issue(alice);
    const late = await tickets.issue(alice);

    clock = NOW + 59_999;
    const inTime = await tickets.redeem(early.ticket);
    clock = NOW + 60_000;
    const tooLate = await tickets.redeem(late.ticket);

    assert.equal(inTime?.id, "alice");
    assert.equal(tooLate, undefined);
  });

  Deno.test(`tickets on ${name} never outlive the credential they stand for`, async () => {
    using store = await open();
    let clock = NOW;
    const tickets = createTickets(store, { now: () => clock });
    const shortLived = { ...alice, expiresAt: NOW + 10_000 };

    const { ticket, expires_at } = await tickets.issue(shortLived);
    clock = NOW + 10_000;
    const redeemed = await tickets.redeem(ticket);

    assert.equal(expires_at, new Date(NOW + 10_000).toISOString());
    assert.equal(redeemed, undefined);
  });

  Deno.test(`tickets on ${name} keep the original credential's expiry`, async () => {
    using store = await open();
    const tickets = createTickets(store, { now: () => NOW });

    const { ticket } = await tickets.issue(alice);
    const redeemed = await tickets.redeem(ticket);

    assert.equal(redeemed?.expiresAt, NOW + 3_600_000);
  });

  Deno.test(`tickets on ${name} refuse unknown and malformed tickets`, async () => {
    using store = await open();
    const tickets = createTickets(store, { now: () => NOW });
    await tickets.issue(alice);

    const unknown = await tickets.redeem("A".repeat(43));
    const malformed = await tickets.redeem("not a ticket");
    const empty = await tickets.redeem("");

    assert.equal(unknown, undefined);
    assert.equal(malformed, undefined);
    assert.equal(empty, undefined);
  });
}

ticketContract("the memory store", () => {
  const store = new MemoryTicketStore();
  return Promise.resolve(Object.assign(store, { [Symbol.dispose]() {} }));
});

ticketContract("the Deno KV store", async () => {
  const kv = await Deno.openKv(":memory:");
  const store = createKvStore(kv, { recentWindowMs: 120_000 });
  return {
    putTicket: (id, record) => store.putTicket(id, record),
    takeTicket: (id) => store.takeTicket(id),
    [Symbol.dispose]: () => kv.close(),
  };
});

Deno.test("tickets are stored under their SHA-256, never in clear", async () => {
  const store = new MemoryTicketStore();
  const tickets = createTickets(store, { now: () => NOW });

  const { ticket } = await tickets.issue(alice);

  assert.deepEqual([...store.records.keys()], [await sha256Hex(ticket)]);
  assert.ok(!JSON.stringify([...store.records]).includes(ticket));
  assert.deepEqual(store.records.get(await sha256Hex(ticket)), {
    principal: alice,
    expiresAt: NOW + 60_000,
  });
});

Deno.test("tickets do not touch the store for a malformed ticket", async () => {
  const store = new MemoryTicketStore();
  const tickets = createTickets(store, { now: () => NOW });

  await tickets.redeem("../../etc/passwd");

  assert.equal(store.takes, 0);
});

Deno.test("tickets are distinct for each issue", async () => {
  const tickets = createTickets(new MemoryTicketStore(), { now: () => NOW });

  const issued = await Promise.all(Array.from({ length: 50 }, () => tickets.issue(alice)));

  assert.equal(new Set(issued.map((i) => i.ticket)).size, 50);
});
