/**
 * The store contract: one suite per port, registered for an adapter by
 * {@linkcode storeContract}. Every adapter of the store ports runs it.
 */

import { deliveryStoreContract } from "./contract/deliveries.ts";
import { erasureStoreContract } from "./contract/erasure.ts";
import { eventStoreContract } from "./contract/events.ts";
import { inboxStoreContract } from "./contract/inbox.ts";
import { retentionStoreContract } from "./contract/retention.ts";
import { seqStoreContract } from "./contract/seqs.ts";
import { streamStoreContract } from "./contract/streams.ts";
import { lifecycleContract, ticketStoreContract } from "./contract/tickets.ts";
import type { Contract } from "./contract/_harness.ts";

export type { Contract, StoreHarness } from "./contract/_harness.ts";

/**
 * Registers every port's contract tests for one adapter, each named
 * `"<adapter>: <behaviour>"`.
 */
export function storeContract(contract: Contract): void {
  eventStoreContract(contract);
  streamStoreContract(contract);
  seqStoreContract(contract);
  deliveryStoreContract(contract);
  inboxStoreContract(contract);
  erasureStoreContract(contract);
  retentionStoreContract(contract);
  ticketStoreContract(contract);
  lifecycleContract(contract);
}
