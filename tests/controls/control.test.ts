import assert from "node:assert/strict";
import {
  type Control,
  controlId,
  covers,
  disabledFor,
  isActive,
  scopeOfId,
  type Subject,
} from "../../src/controls/control.ts";

const ana: Subject = {
  id: "ana",
  roles: ["ROLE_STUDENT"],
  structures: ["univ-a"],
  category: "STUDENT",
};
const ben: Subject = {
  id: "ben",
  roles: ["ROLE_STAFF"],
  structures: ["univ-b"],
  category: "STAFF",
};

function control(patch: Partial<Control> & Pick<Control, "scope">): Control {
  const at = new Date(0).toISOString();
  const actor = { service: "test" };
  return {
    id: controlId(patch.scope),
    features: ["messaging"],
    reason: "maintenance",
    created_at: at,
    updated_at: at,
    created_by: actor,
    updated_by: actor,
    ...patch,
  };
}

Deno.test("each scope type covers exactly the subjects it names", () => {
  const cases: [Control["scope"], boolean, boolean][] = [
    [{ type: "SYSTEM" }, true, true],
    [{ type: "STRUCTURE", id: "univ-a" }, true, false],
    [{ type: "ROLE", id: "ROLE_STAFF" }, false, true],
    [{ type: "CATEGORY", id: "STUDENT" }, true, false],
    [{ type: "USER", id: "ben" }, false, true],
  ];
  for (const [scope, forAna, forBen] of cases) {
    assert.equal(covers(scope, ana), forAna, `${controlId(scope)} for ana`);
    assert.equal(covers(scope, ben), forBen, `${controlId(scope)} for ben`);
  }
});

Deno.test("a control id and its scope convert both ways and bad ids are refused", () => {
  for (
    const scope of [
      { type: "SYSTEM" as const },
      { type: "STRUCTURE" as const, id: "univ:x" },
      { type: "CATEGORY" as const, id: "STAFF" },
      { type: "USER" as const, id: "7b1d0c3e" },
      // Any id a user may hold data under (the user-id rule): spaces, slashes, 256 characters.
      { type: "USER" as const, id: " dept/j doe " },
      { type: "USER" as const, id: "é".repeat(256) },
    ]
  ) {
    assert.deepEqual(scopeOfId(controlId(scope)), scope);
  }
  for (
    const bad of [
      "",
      "nope",
      "category:TEACHER",
      "user:",
      ":x",
      "system:x",
      "structure: padded ",
      "user:..",
      `user:${"x".repeat(257)}`,
    ]
  ) {
    assert.equal(scopeOfId(bad), undefined, bad);
  }
});

Deno.test("a control is inactive once its until has passed", () => {
  const c = control({ scope: { type: "SYSTEM" }, until: new Date(1000).toISOString() });
  assert.equal(isActive(c, 999), true);
  assert.equal(isActive(c, 1000), false);
  assert.equal(isActive(control({ scope: { type: "SYSTEM" } }), Date.now()), true);
});

Deno.test("disabledFor gives each feature once, with the reason of the widest scope", () => {
  const controls = [
    control({ scope: { type: "USER", id: "ana" }, features: ["messaging", "email"], reason: "u" }),
    control({ scope: { type: "SYSTEM" }, features: ["messaging"], reason: "everyone" }),
    control({ scope: { type: "STRUCTURE", id: "univ-b" }, features: ["realtime"], reason: "b" }),
  ];
  const off = disabledFor(controls, ana, 0);
  assert.deepEqual(off.map((d) => [d.feature, d.reason]), [
    ["messaging", "everyone"],
    ["email", "u"],
  ]);
  assert.deepEqual(disabledFor(controls, ben, 0).map((d) => d.feature), ["realtime", "messaging"]);
});

Deno.test("disabledFor ignores expired controls", () => {
  const expired = control({ scope: { type: "SYSTEM" }, until: new Date(10).toISOString() });
  assert.deepEqual(disabledFor([expired], ana, 5).map((d) => d.feature), ["messaging"]);
  assert.deepEqual(disabledFor([expired], ana, 10), []);
});
