import assert from "node:assert/strict";
import type { ControlInput, Subject } from "../../src/controls/control.ts";
import { createControls } from "../../src/controls/controls.ts";
import { createKvControlStore } from "../../src/controls/kv_control_store.ts";
import { AppError } from "../../src/errors.ts";
import { eventually } from "../_support/eventually.ts";

const ana: Subject = { id: "ana", roles: ["ROLE_STUDENT"], structures: ["univ-a"] };
const ops = { service: "ops" };

async function setup(refreshMs = 60_000) {
  const kv = await Deno.openKv(":memory:");
  const store = createKvControlStore(kv);
  const errors: unknown[] = [];
  const controls = createControls({ store, refreshMs, onError: (_, e) => errors.push(e) });
  await controls.start();
  return {
    kv,
    store,
    controls,
    errors,
    close() {
      controls.stop();
      kv.close();
    },
  };
}

Deno.test("a disabled feature answers feature_disabled naming the reason, others stay on", async () => {
  const t = await setup();
  try {
    await t.controls.put(undefined, {
      scope: { type: "STRUCTURE", id: "univ-a" },
      features: ["messaging"],
      reason: "Exam week",
    }, ops);
    assert.equal(t.controls.isEnabled("messaging", ana), false);
    assert.equal(t.controls.isEnabled("notifications", ana), true);
    assert.equal(t.controls.isEnabled("messaging", { ...ana, structures: ["univ-b"] }), true);
    assert.throws(
      () => t.controls.assertEnabled("messaging", ana),
      (e) =>
        e instanceof AppError && e.code === "feature_disabled" && e.status === 403 &&
        e.message === 'Feature "messaging" is disabled: Exam week',
    );
  } finally {
    t.close();
  }
});

Deno.test("putting a scope again replaces its control and keeps who created it", async () => {
  const t = await setup();
  try {
    const first = await t.controls.put("user:ana", {
      features: ["email"],
      reason: "bounces",
      by: "alice",
    }, ops);
    assert.equal(first.created, true);
    const second = await t.controls.put(undefined, {
      scope: { type: "USER", id: "ana" },
      features: ["email", "messaging"],
      reason: "spam",
    }, { service: "ops2" });
    assert.equal(second.created, false);
    assert.equal(t.controls.list().length, 1);
    assert.deepEqual(second.control.created_by, { service: "ops", by: "alice" });
    assert.deepEqual(second.control.updated_by, { service: "ops2" });
  } finally {
    t.close();
  }
});

Deno.test("a control input is refused when its id and scope disagree or until has passed", async () => {
  const t = await setup();
  try {
    const codes = [];
    const cases: [string | undefined, ControlInput][] = [
      ["user:ana", { scope: { type: "USER", id: "ben" }, features: ["email"], reason: "x" }],
      [undefined, { features: ["email"], reason: "x" }],
      ["teacher:x", { features: ["email"], reason: "x" }],
      [undefined, {
        scope: { type: "SYSTEM" },
        features: ["email"],
        reason: "x",
        until: "2000-01-01T00:00:00Z",
      }],
    ];
    for (const [id, input] of cases) {
      try {
        await t.controls.put(id, input, ops);
        codes.push("accepted");
      } catch (e) {
        codes.push((e as AppError).code);
      }
    }
    assert.deepEqual(codes, Array(4).fill("validation_failed"));
    assert.equal(t.controls.list().length, 0);
  } finally {
    t.close();
  }
});

Deno.test("a control expires by itself at until and listeners hear of it", async () => {
  const t = await setup();
  try {
    let changes = 0;
    t.controls.onChange(() => changes++);
    await t.controls.put(undefined, {
      scope: { type: "SYSTEM" },
      features: ["realtime"],
      reason: "short",
      until: new Date(Date.now() + 300).toISOString(),
    }, ops);
    assert.equal(changes, 1);
    assert.equal(t.controls.isEnabled("realtime", ana), false);
    await eventually(() => changes >= 2, 5000, "the control to expire");
    assert.equal(changes, 2);
    assert.equal(t.controls.isEnabled("realtime", ana), true);
  } finally {
    t.close();
  }
});

Deno.test("a change made by another process on the same store is picked up by polling", async () => {
  const t = await setup(100);
  const other = createControls({ store: t.store, refreshMs: 60_000, onError: () => {} });
  await other.start();
  try {
    let heard = false;
    t.controls.onChange(() => heard = true);
    await other.put("system", { features: ["notifications"], reason: "incident" }, ops);
    await eventually(() => heard, 5000, "the change to be polled");
    assert.equal(heard, true);
    assert.equal(t.controls.isEnabled("notifications", ana), false);
    await other.remove("system", ops, "fixed");
    await t.controls.refresh();
    assert.equal(t.controls.isEnabled("notifications", ana), true);
    const log = await t.controls.audit({ limit: 10 });
    assert.deepEqual(log.map((e) => [e.action, e.reason]), [["delete", "fixed"], [
      "put",
      "incident",
    ]]);
  } finally {
    other.stop();
    t.close();
  }
});
