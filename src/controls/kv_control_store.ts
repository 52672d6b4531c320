/**
 * The Deno KV adapter of the control store port.
 *
 * A change writes the control, its audit entry and a version counter in one atomic
 * commit checked against the control as it was read, so two admins racing on one
 * scope cannot lose an audit entry or overwrite each other unknowingly.
 */

import * as keys from "../store/keys.ts";
import type { AuditEntry, Control } from "./control.ts";
import type { ControlStore } from "./control_store.ts";

/** Creates the control store on an open Deno KV handle. */
export function createKvControlStore(kv: Deno.Kv) {
  async function expectedEntry(id: string, expected: Control | null) {
    const entry = await kv.get<Control>(keys.controlKey(id));
    const same = expected === null
      ? entry.value === null
      : entry.value !== null && JSON.stringify(entry.value) === JSON.stringify(expected);
    return same ? entry : undefined;
  }

  function audited(op: Deno.AtomicOperation, audit: AuditEntry) {
    return op
      .set(keys.controlAuditKey(Date.parse(audit.at), audit.id), audit)
      .sum(keys.controlsVersionKey(), 1n);
  }

  return {
    async listControls() {
      const out: Control[] = [];
      for await (const e of kv.list<Control>({ prefix: keys.controlPrefix() })) out.push(e.value);
      return out;
    },
    async getControl(id) {
      return (await kv.get<Control>(keys.controlKey(id))).value ?? undefined;
    },
    async saveControl(control, audit, expected) {
      const entry = await expectedEntry(control.id, expected);
      if (!entry) return false;
      const op = kv.atomic().check(entry).set(keys.controlKey(control.id), control);
      return (await audited(op, audit).commit()).ok;
    },
    async deleteControl(id, audit, expected) {
      const entry = await expectedEntry(id, expected);
      if (!entry) return false;
      const op = kv.atomic().check(entry).delete(keys.controlKey(id));
      return (await audited(op, audit).commit()).ok;
    },
    async appendAudit(audit) {
      const key = keys.controlAuditKey(Date.parse(audit.at), audit.id);
      const result = await kv.atomic().set(key, audit).commit();
      if (!result.ok) throw new Error(`Cannot append audit entry "${audit.id}"`);
    },
    async listAudit({ limit, before }) {
      const out: AuditEntry[] = [];
      const end = before === undefined ? undefined : keys.controlAuditKey(Date.parse(before), "");
      const iter = kv.list<AuditEntry>(
        end ? { prefix: keys.controlAuditPrefix(), end } : { prefix: keys.controlAuditPrefix() },
        { limit, reverse: true },
      );
      for await (const e of iter) out.push(e.value);
      return out;
    },
    async version() {
      const entry = await kv.get<Deno.KvU64>(keys.controlsVersionKey());
      return String(entry.value?.value ?? 0n);
    },
  } satisfies ControlStore;
}
