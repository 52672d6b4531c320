/** What a store contract suite needs from the adapter under test. */

import type { Envelope } from "../../../src/schemas/envelope.ts";
import type { Store } from "../../../src/store/store.ts";
import * as keys from "../../../src/store/keys.ts";
import { createKvStore } from "../../../src/store/kv_store.ts";
import { makeEnvelope, result } from "../../_support/store.ts";

/** A fresh, empty store of the adapter under test, with what the contract inspects. */
export interface StoreHarness {
  store: Store;
  /** Ids of the mail tasks the store has queued, in any order. */
  mailTasks(): Promise<string[]>;
  /** Releases the store. */
  close(): void;
}

/** The KV store on the database `kv` (Deno KV or the Redis KV), as the contract runs it. */
export function kvStoreHarness(kv: Deno.Kv): StoreHarness {
  return {
    store: createKvStore(kv, { recentWindowMs: 60_000 }),
    async mailTasks() {
      const ids: string[] = [];
      for await (const t of kv.list({ prefix: keys.mailTaskPrefix() })) {
        ids.push(t.key[2] as string);
      }
      return ids;
    },
    close: () => kv.close(),
  };
}

/** An adapter as the contract runs it. */
export interface Contract {
  /** The adapter's name, the prefix of every test name. */
  name: string;
  /** Opens a fresh, empty store. */
  open(): Promise<StoreHarness>;
  /** Most targets a one-commit publish takes (`publishAtomic`) before the job path. */
  atomicTargets: number;
}

/** Registers one contract test, named `"<adapter>: <behaviour>"`, on a fresh store. */
export function contractTest(
  contract: Contract,
  behaviour: string,
  fn: (store: Store, harness: StoreHarness) => Promise<void>,
): void {
  Deno.test(`${contract.name}: ${behaviour}`, async () => {
    const harness = await contract.open();
    try {
      await fn(harness.store, harness);
    } finally {
      harness.close();
    }
  });
}

/** Publishes `e` to `targets` through the job path, to the end of its fan-out. */
export async function publish(store: Store, targets: string[], e = makeEnvelope()) {
  await store.createEvent(e, targets, result(e, targets.length));
  await store.runFanout(e.metadata.id, () => {});
  return e;
}

/** Reads a user's whole stream now, as a resume from the start would. */
export const readAll = (store: Store, user: string) =>
  store.readStream(user, 0, { limit: 1000, windowMs: 60_000, now: Date.now() });

/** A NOTIFICATION envelope with a fresh id and `metadata` changed as given. */
export function withMetadata(
  metadata: Partial<Envelope["metadata"]>,
  options: Parameters<typeof makeEnvelope>[1] = {},
): Envelope {
  const e = makeEnvelope("NOTIFICATION", options);
  return { ...e, metadata: { ...e.metadata, ...metadata } };
}

/** A NOTIFICATION that expires one second from now. */
export const expiringSoon = () =>
  withMetadata({ expiration: new Date(Date.now() + 1_000).toISOString() });
