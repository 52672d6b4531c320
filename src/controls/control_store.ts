/**
 * The control store port: kill switches and their audit log, durably.
 *
 * The Deno KV adapter is `kv_control_store.ts`; the contract test in
 * `tests/controls/control_store.test.ts` runs against every adapter.
 */

import type { AuditEntry, Control } from "./control.ts";

/** Where kill switches live. */
export interface ControlStore {
  /** Every stored control, active or expired. */
  listControls(): Promise<Control[]>;
  getControl(id: string): Promise<Control | undefined>;
  /**
   * Creates or replaces a control and appends its audit entry, atomically; the change
   * is refused (`false`) if the control changed since `expected` was read (`null`: it
   * did not exist).
   */
  saveControl(control: Control, audit: AuditEntry, expected: Control | null): Promise<boolean>;
  /** Deletes a control and appends its audit entry, atomically, if it is still `expected`. */
  deleteControl(id: string, audit: AuditEntry, expected: Control): Promise<boolean>;
  /** Appends an audit entry that changes no control (an operator's action on a user). */
  appendAudit(audit: AuditEntry): Promise<void>;
  /** Audit entries, newest first; `before` is an entry's `at` (ISO) to page back from. */
  listAudit(options: { limit: number; before?: string }): Promise<AuditEntry[]>;
  /** A value that changes whenever a control changes, in any process sharing the store. */
  version(): Promise<string>;
}
