/**
 * The kill switch service: an in-memory cache of the stored controls that every check
 * reads, kept fresh on change.
 *
 * A change made here reloads the cache and tells listeners at once (live connections
 * are closed or told within the same turn). A change made by another process sharing
 * the store is noticed by polling the store's version every `refreshMs`. A control's
 * `until` is checked on every read, and a timer tells listeners when the next one
 * passes, so clients learn that a feature is back without anyone touching the switch.
 */

import { AppError } from "../errors.ts";
import {
  type Actor,
  type AuditEntry,
  type Control,
  controlId,
  type ControlInput,
  type Disabled,
  disabledFor,
  type Feature,
  isActive,
  type Scope,
  scopeOfId,
  type Subject,
} from "./control.ts";
import type { ControlStore } from "./control_store.ts";

/** Dependencies of {@linkcode createControls}. */
export interface ControlsDeps {
  store: ControlStore;
  /** How often the store's version is polled for changes made by other processes. */
  refreshMs: number;
  onError(message: string, error: unknown): void;
  now?: () => number;
}

/** A change listener; called after the cache changed or a control expired. */
export type ControlsListener = () => void;

/** The kill switch service; built by {@linkcode createControls}. */
export interface Controls {
  /** Loads the controls and starts watching for changes. */
  start(): Promise<void>;
  /** Stops the timers. */
  stop(): void;
  /** Every control (active or expired), by id. */
  list(): Control[];
  get(id: string): Control | undefined;
  /**
   * Creates or replaces the control of a scope. `id` (from the path) and `input.scope`
   * must agree when both are given.
   */
  put(
    id: string | undefined,
    input: ControlInput,
    actor: Actor,
  ): Promise<{ control: Control; created: boolean }>;
  /** Deletes a control; `undefined` if there was none. */
  remove(id: string, actor: Actor, reason?: string): Promise<Control | undefined>;
  /** Deletes every control; returns how many. */
  removeAll(actor: Actor, reason?: string): Promise<number>;
  audit(options: { limit: number; before?: string }): Promise<AuditEntry[]>;
  /**
   * Records an operator's action on a user that changes no switch (closing their
   * connections) in the audit log, under the id `user:<id>`.
   */
  recordAction(
    action: "disconnect",
    user: string,
    actor: Actor,
    reason?: string,
  ): Promise<AuditEntry>;
  /** Features off for the subject now, with the reason of each. */
  disabled(subject: Subject): Disabled[];
  isEnabled(feature: Feature, subject: Subject): boolean;
  /** Throws `feature_disabled` (403) naming the feature and the reason when it is off. */
  assertEnabled(feature: Feature, subject: Subject): void;
  /** Calls `listener` after every change; returns the unsubscribe function. */
  onChange(listener: ControlsListener): () => void;
  /** Reloads from the store now if its version moved (or `force`). */
  refresh(force?: boolean): Promise<void>;
}

/** The error a disabled feature answers with. */
export function featureDisabledError(off: Disabled): AppError {
  return new AppError("feature_disabled", `Feature "${off.feature}" is disabled: ${off.reason}`, {
    details: {
      feature: off.feature,
      reason: off.reason,
      scope: off.scope,
      ...(off.until ? { until: off.until } : {}),
    },
  });
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/** Creates the service; call `start()` before use. */
export function createControls(deps: ControlsDeps): Controls {
  const now = deps.now ?? Date.now;
  let controls = new Map<string, Control>();
  let version: string | undefined;
  let refreshTimer: ReturnType<typeof setInterval> | undefined;
  let expiryTimer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  let reloading: Promise<void> | undefined;
  const listeners = new Set<ControlsListener>();

  function notify() {
    for (const listener of listeners) {
      try {
        listener();
      } catch (error) {
        deps.onError("A kill switch listener failed", error);
      }
    }
  }

  /** Arms a timer for the next `until` to pass, so listeners hear of the expiry. */
  function armExpiry() {
    clearTimeout(expiryTimer);
    expiryTimer = undefined;
    if (stopped) return;
    const at = now();
    const next = Math.min(
      ...[...controls.values()].filter((c) => c.until && isActive(c, at)).map((c) =>
        Date.parse(c.until!)
      ),
    );
    if (!Number.isFinite(next)) return;
    const delay = Math.min(Math.max(0, next - at) + 5, MAX_TIMER_MS);
    expiryTimer = setTimeout(() => {
      expiryTimer = undefined;
      armExpiry();
      notify();
    }, delay);
  }

  async function load() {
    const [v, list] = await Promise.all([deps.store.version(), deps.store.listControls()]);
    const changed = v !== version;
    version = v;
    controls = new Map(list.map((c) => [c.id, c]));
    armExpiry();
    if (changed) notify();
  }

  function refresh(force = false): Promise<void> {
    // One reload at a time; a forced one waits for the running one and then runs.
    const run = async () => {
      if (!force && (await deps.store.version()) === version) return;
      await load();
    };
    const next = (reloading ?? Promise.resolve()).then(run, run);
    reloading = next.finally(() => {
      if (reloading === next) reloading = undefined;
    });
    // The caller sees a failure on `next`; this copy of it must not go unhandled.
    reloading.catch(() => {});
    return next;
  }

  function resolveScope(id: string | undefined, scope: Scope | undefined): Scope {
    if (id !== undefined) {
      const fromId = scopeOfId(id);
      if (!fromId) {
        throw new AppError(
          "validation_failed",
          `Invalid control id ${
            JSON.stringify(id.slice(0, 100))
          }: expected "system" or "<structure|role|category|user>:<id>"`,
          { details: [{ path: "id", message: "not a scope id" }] },
        );
      }
      if (scope && controlId(scope) !== id) {
        throw new AppError(
          "validation_failed",
          `Invalid control: scope "${controlId(scope)}" does not match the id "${id}"`,
          { details: [{ path: "scope", message: "does not match the id in the path" }] },
        );
      }
      return fromId;
    }
    if (!scope) {
      throw new AppError("validation_failed", 'Invalid control: "scope": missing', {
        details: [{ path: "scope", message: "expected a scope" }],
      });
    }
    return scope;
  }

  function auditEntry(
    action: AuditEntry["action"],
    id: string,
    actor: Actor,
    before: Control | null,
    after: Control | null,
    reason: string | undefined,
  ): AuditEntry {
    return {
      id: crypto.randomUUID(),
      at: new Date(now()).toISOString(),
      action,
      control_id: id,
      actor,
      ...(reason ? { reason } : {}),
      before,
      after,
    };
  }

  async function changed() {
    await refresh(true);
  }

  function disabled(subject: Subject): Disabled[] {
    if (controls.size === 0) return [];
    return disabledFor(controls.values(), subject, now());
  }

  return {
    async start() {
      stopped = false;
      await load();
      clearInterval(refreshTimer);
      refreshTimer = setInterval(() => {
        refresh().catch((error) => deps.onError("Cannot reload the kill switches", error));
      }, deps.refreshMs);
    },
    stop() {
      stopped = true;
      clearInterval(refreshTimer);
      clearTimeout(expiryTimer);
    },
    list: () => [...controls.values()].sort((a, b) => a.id.localeCompare(b.id)),
    get: (id) => controls.get(id),
    async put(id, input, actor) {
      const scope = resolveScope(id, input.scope);
      const key = controlId(scope);
      if (input.until !== undefined && Date.parse(input.until) <= now()) {
        throw new AppError("validation_failed", 'Invalid control: "until": already passed', {
          details: [{ path: "until", message: "expected a time in the future" }],
        });
      }
      if (scope.type !== "SYSTEM" && input.features.includes("ingest")) {
        throw new AppError(
          "validation_failed",
          'Invalid control: "features": "ingest" can be switched off for everyone only',
          { details: [{ path: "features", message: 'expected "ingest" with a SYSTEM scope' }] },
        );
      }
      const who: Actor = { ...actor, ...(input.by ? { by: input.by } : {}) };
      for (let attempt = 0; attempt < 5; attempt++) {
        const before = (await deps.store.getControl(key)) ?? null;
        const at = new Date(now()).toISOString();
        const control: Control = {
          id: key,
          scope,
          features: [...input.features],
          reason: input.reason,
          ...(input.until ? { until: new Date(Date.parse(input.until)).toISOString() } : {}),
          created_at: before?.created_at ?? at,
          updated_at: at,
          created_by: before?.created_by ?? who,
          updated_by: who,
        };
        const audit = auditEntry("put", key, who, before, control, input.reason);
        if (await deps.store.saveControl(control, audit, before)) {
          await changed();
          return { control, created: before === null };
        }
      }
      throw new AppError("conflict", `Control "${key}" keeps changing: try again`);
    },
    async remove(id, actor, reason) {
      for (let attempt = 0; attempt < 5; attempt++) {
        const before = await deps.store.getControl(id);
        if (!before) return undefined;
        const audit = auditEntry("delete", id, actor, before, null, reason);
        if (await deps.store.deleteControl(id, audit, before)) {
          await changed();
          return before;
        }
      }
      throw new AppError("conflict", `Control "${id}" keeps changing: try again`);
    },
    async removeAll(actor, reason) {
      let count = 0;
      for (const control of await deps.store.listControls()) {
        const before = await deps.store.getControl(control.id);
        if (!before) continue;
        const audit = auditEntry("delete", control.id, actor, before, null, reason);
        if (await deps.store.deleteControl(control.id, audit, before)) count++;
      }
      await changed();
      return count;
    },
    audit: (options) => deps.store.listAudit(options),
    async recordAction(action, user, actor, reason) {
      const entry = auditEntry(
        action,
        controlId({ type: "USER", id: user }),
        actor,
        null,
        null,
        reason,
      );
      await deps.store.appendAudit(entry);
      return entry;
    },
    disabled,
    isEnabled(feature, subject) {
      return !disabled(subject).some((d) => d.feature === feature);
    },
    assertEnabled(feature, subject) {
      const off = disabled(subject).find((d) => d.feature === feature);
      if (off) throw featureDisabledError(off);
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    refresh,
  };
}
