/**
 * The in-memory adapter of the control store port, for apps built without KV (route
 * tests). Nothing survives the process: production wires `kv_control_store.ts`.
 */

import type { AuditEntry, Control } from "./control.ts";
import type { ControlStore } from "./control_store.ts";

/** Creates an empty in-memory control store. */
export function createMemoryControlStore() {
  const controls = new Map<string, Control>();
  const audit: AuditEntry[] = [];
  let version = 0;

  const same = (a: Control | undefined | null, b: Control | null) =>
    (a ?? null) === null ? b === null : b !== null && JSON.stringify(a) === JSON.stringify(b);

  function record(entry: AuditEntry) {
    audit.push(entry);
    audit.sort((x, y) => Date.parse(x.at) - Date.parse(y.at) || x.id.localeCompare(y.id));
    version++;
  }

  return {
    listControls: () => Promise.resolve([...controls.values()].map((c) => structuredClone(c))),
    getControl: (id) =>
      Promise.resolve(controls.has(id) ? structuredClone(controls.get(id)!) : undefined),
    saveControl(control, entry, expected) {
      if (!same(controls.get(control.id), expected)) return Promise.resolve(false);
      controls.set(control.id, structuredClone(control));
      record(structuredClone(entry));
      return Promise.resolve(true);
    },
    deleteControl(id, entry, expected) {
      if (!same(controls.get(id), expected)) return Promise.resolve(false);
      controls.delete(id);
      record(structuredClone(entry));
      return Promise.resolve(true);
    },
    appendAudit(entry) {
      audit.push(structuredClone(entry));
      audit.sort((x, y) => Date.parse(x.at) - Date.parse(y.at) || x.id.localeCompare(y.id));
      return Promise.resolve();
    },
    listAudit({ limit, before }) {
      const end = before === undefined ? Infinity : Date.parse(before);
      return Promise.resolve(
        audit.filter((e) => Date.parse(e.at) < end).reverse().slice(0, limit).map((e) =>
          structuredClone(e)
        ),
      );
    },
    version: () => Promise.resolve(String(version)),
  } satisfies ControlStore;
}
