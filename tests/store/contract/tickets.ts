/** The contracts of the ticket port and of the store's lifecycle. */

import assert from "node:assert/strict";
import { type Contract, contractTest } from "./_harness.ts";

const record = (id: string) => ({
  principal: { kind: "user" as const, id, roles: [], structures: [] },
  expiresAt: Date.now() + 60_000,
});

/** Registers the ticket port's contract tests for one adapter. */
export function ticketStoreContract(contract: Contract): void {
  contractTest(contract, "gives a ticket out once", async (store) => {
    await store.putTicket("h", record("u"));
    const taken = await Promise.all([store.takeTicket("h"), store.takeTicket("h")]);
    assert.equal(taken.filter(Boolean).length, 1);
    assert.equal(await store.takeTicket("h"), undefined);
  });

  contractTest(contract, "keeps each ticket's principal and expiry", async (store) => {
    const u = record("u");
    const v = record("v");
    await store.putTicket("hu", u);
    await store.putTicket("hv", v);
    assert.deepEqual(await store.takeTicket("hv"), v);
    assert.deepEqual(await store.takeTicket("hu"), u);
    assert.equal(await store.takeTicket("unknown"), undefined);
  });
}

/** Registers the lifecycle contract tests for one adapter. */
export function lifecycleContract(contract: Contract): void {
  contractTest(contract, "answers a ping", async (store) => {
    assert.equal(await store.ping(), true);
  });
}
