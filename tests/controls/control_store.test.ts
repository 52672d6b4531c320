/** The control store contract, run against every adapter: Deno KV and memory. */

import assert from "node:assert/strict";
import type { AuditEntry, Control } from "../../src/controls/control.ts";
import type { ControlStore } from "../../src/controls/control_store.ts";
import { createKvControlStore } from "../../src/controls/kv_control_store.ts";
import { createMemoryControlStore } from "../../src/controls/memory_control_store.ts";

const adapters: { name: string; open(): Promise<{ store: ControlStore; close(): void }> }[] = [
  {
    name: "kv",
    async open() {
      const kv = await Deno.openKv(":memory:");
      return { store: createKvControlStore(kv), close: () => kv.close() };
    },
  },
  {
    name: "memory",
    open: () => Promise.resolve({ store: createMemoryControlStore(), close: () => {} }),
  },
];

let clock = Date.UTC(2026, 2, 5);

function control(id: string, reason = "maintenance"): Control {
  const at = new Date(clock).toISOString();
  return {
    id,
    scope: id === "system" ? { type: "SYSTEM" } : { type: "USER", id: id.slice(5) },
    features: ["messaging"],
    reason,
    created_at: at,
    updated_at: at,
    created_by: { service: "ops" },
    updated_by: { service: "ops" },
  };
}

function audit(
  action: AuditEntry["action"],
  before: Control | null,
  after: Control | null,
): AuditEntry {
  return {
    id: crypto.randomUUID(),
    at: new Date(clock += 1000).toISOString(),
    action,
    control_id: (after ?? before)!.id,
    actor: { service: "ops", by: "alice" },
    reason: (after ?? before)!.reason,
    before,
    after,
  };
}

for (const adapter of adapters) {
  const test = (what: string, fn: (store: ControlStore) => Promise<void>) =>
    Deno.test(`${adapter.name} control store ${what}`, async () => {
      const { store, close } = await adapter.open();
      try {
        await fn(store);
      } finally {
        close();
      }
    });

  test("saves, replaces and deletes a control with an audit entry for each change", async (store) => {
    const v0 = await store.version();
    const first = control("user:ana");
    assert.equal(await store.saveControl(first, audit("put", null, first), null), true);
    const second = { ...control("user:ana", "still broken"), features: ["email" as const] };
    assert.equal(await store.saveControl(second, audit("put", first, second), first), true);
    assert.deepEqual(await store.getControl("user:ana"), second);
    assert.deepEqual(await store.listControls(), [second]);
    assert.notEqual(await store.version(), v0);
    assert.equal(
      await store.deleteControl("user:ana", audit("delete", second, null), second),
      true,
    );
    assert.equal(await store.getControl("user:ana"), undefined);
    const log = await store.listAudit({ limit: 10 });
    assert.deepEqual(log.map((e) => e.action), ["delete", "put", "put"]);
    assert.deepEqual(log[1].before, first);
    assert.deepEqual(log[1].after, second);
    assert.equal(log[0].actor.by, "alice");
  });

  test("refuses a change made from a stale read, writing no audit entry", async (store) => {
    const first = control("system");
    assert.equal(await store.saveControl(first, audit("put", null, first), null), true);
    const racing = control("system", "other admin");
    assert.equal(await store.saveControl(racing, audit("put", null, racing), null), false);
    const stale = { ...first, reason: "stale" };
    assert.equal(await store.deleteControl("system", audit("delete", stale, null), stale), false);
    assert.deepEqual(await store.getControl("system"), first);
    assert.equal((await store.listAudit({ limit: 10 })).length, 1);
  });

  test("pages the audit log back in time", async (store) => {
    for (const id of ["user:a", "user:b", "user:c"]) {
      const c = control(id);
      await store.saveControl(c, audit("put", null, c), null);
    }
    const page1 = await store.listAudit({ limit: 2 });
    assert.deepEqual(page1.map((e) => e.control_id), ["user:c", "user:b"]);
    const page2 = await store.listAudit({ limit: 2, before: page1[1].at });
    assert.deepEqual(page2.map((e) => e.control_id), ["user:a"]);
  });
}
