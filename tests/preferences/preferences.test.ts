import assert from "node:assert/strict";
import * as v from "valibot";
import {
  chooseChannels,
  isCritical,
  nextDigestAt,
  PreferencesSchema,
  quietUntil,
} from "../../src/preferences/preferences.ts";
import { EnvelopeSchema } from "../../src/schemas/envelope.ts";

const envelope = (
  patch: { priority?: string; type?: string; source?: string; channels?: string[] },
) =>
  v.parse(EnvelopeSchema, {
    metadata: {
      id: crypto.randomUUID(),
      type: patch.type ?? "NOTIFICATION",
      priority: patch.priority ?? "NORMAL",
      emitter: "portfolio-api",
      source: patch.source ?? "feedback",
      topic: "ASK_FOR_FEEDBACK",
    },
    routing: {
      audience: { type: "USER", targets: ["u"] },
      channels: patch.channels ?? ["inapp", "email"],
    },
  });

const prefs = (input: unknown) => v.parse(PreferencesSchema, input);

Deno.test("preferences default to the envelope's channels", () => {
  assert.deepEqual(chooseChannels(envelope({}), undefined), {
    inapp: true,
    email: true,
    digest: "off",
  });
  assert.deepEqual(chooseChannels(envelope({ channels: ["inapp"] }), prefs({})), {
    inapp: true,
    email: false,
    digest: "off",
  });
});

Deno.test("preferences per source filter channels and choose the digest", () => {
  const p = prefs({
    sources: {
      feedback: { channels: ["email"], digest: "daily" },
      activities: { channels: ["none"] },
    },
  });
  assert.deepEqual(chooseChannels(envelope({}), p), { inapp: false, email: true, digest: "daily" });
  assert.deepEqual(chooseChannels(envelope({ source: "activities" }), p), {
    inapp: false,
    email: false,
    digest: "off",
  });
  // A preference never adds a channel the envelope did not ask for.
  assert.equal(chooseChannels(envelope({ channels: ["inapp"] }), p).email, false);
});

Deno.test("the global switch mutes notifications but not critical items", () => {
  const off = prefs({ enabled: false });
  assert.deepEqual(chooseChannels(envelope({}), off), {
    inapp: false,
    email: false,
    digest: "off",
  });
  const platform = envelope({ priority: "HIGH", source: "platform" });
  assert.equal(isCritical(platform.metadata), true);
  assert.deepEqual(chooseChannels(platform, off), { inapp: true, email: true, digest: "off" });
  // A HIGH item from another source is urgent but not critical: mutes apply.
  assert.equal(chooseChannels(envelope({ priority: "HIGH" }), off).inapp, false);
  // SYSTEM and REALTIME items are not notifications: preferences do not apply.
  assert.equal(chooseChannels(envelope({ type: "SYSTEM" }), off).inapp, true);
  assert.equal(
    chooseChannels(envelope({ type: "REALTIME", channels: ["inapp"] }), off).inapp,
    true,
  );
});

Deno.test("preferences refuse bad time zones, times and channel mixes with field paths", () => {
  const issues = (input: unknown) =>
    v.safeParse(PreferencesSchema, input).issues?.map((i) => v.getDotPath(i));
  assert.deepEqual(issues({ timezone: "Mars/Olympus" }), ["timezone"]);
  assert.deepEqual(issues({ quiet_hours: { start: "25:00", end: "07:00" } }), [
    "quiet_hours.start",
  ]);
  assert.deepEqual(issues({ sources: { feedback: { channels: ["none", "email"] } } }), [
    "sources.feedback.channels",
  ]);
  assert.deepEqual(issues({ colour: "blue" }), ["colour"]);
});

Deno.test("quiet hours are read in the user's time zone and may wrap midnight", () => {
  const p = prefs({ timezone: "Europe/Paris", quiet_hours: { start: "22:00", end: "07:00" } });
  // 2026-01-15T22:30Z is 23:30 in Paris (UTC+1): quiet until 07:00 Paris = 06:00Z.
  assert.equal(
    new Date(quietUntil(p, Date.parse("2026-01-15T22:30:00Z"))!).toISOString(),
    "2026-01-16T06:00:00.000Z",
  );
  // 05:59Z is 06:59 in Paris: one minute left.
  assert.equal(
    new Date(quietUntil(p, Date.parse("2026-01-16T05:59:00Z"))!).toISOString(),
    "2026-01-16T06:00:00.000Z",
  );
  // 06:00Z is 07:00 in Paris: awake. In New York (UTC-5) the same instant is 01:00: quiet.
  assert.equal(quietUntil(p, Date.parse("2026-01-16T06:00:00Z")), undefined);
  const ny = prefs({ timezone: "America/New_York", quiet_hours: { start: "22:00", end: "07:00" } });
  assert.equal(
    new Date(quietUntil(ny, Date.parse("2026-01-16T06:00:00Z"))!).toISOString(),
    "2026-01-16T12:00:00.000Z",
  );
  assert.equal(quietUntil(prefs({}), Date.parse("2026-01-16T02:00:00Z")), undefined);
});

Deno.test("digests go out at the next full hour or the next daily time in the user's zone", () => {
  const at = Date.parse("2026-01-15T10:17:30Z");
  assert.equal(
    new Date(nextDigestAt("hourly", at, { timezone: "Europe/Paris", dailyAt: "08:00" }))
      .toISOString(),
    "2026-01-15T11:00:00.000Z",
  );
  // 11:17 in Paris: the next 08:00 Paris is tomorrow 07:00Z.
  assert.equal(
    new Date(nextDigestAt("daily", at, { timezone: "Europe/Paris", dailyAt: "08:00" }))
      .toISOString(),
    "2026-01-16T07:00:00.000Z",
  );
  assert.equal(
    new Date(nextDigestAt("daily", at, { timezone: "Europe/Paris", dailyAt: "18:30" }))
      .toISOString(),
    "2026-01-15T17:30:00.000Z",
  );
});

Deno.test("sources named after Object.prototype members are kept, validated and applied", () => {
  // JSON.parse makes "__proto__" an own key, as a request body does.
  const input = JSON.parse(`{"sources": {
    "__proto__": {"channels": ["email"], "digest": "daily"},
    "constructor": {"channels": ["none"]},
    "prototype": {"channels": ["inapp"]},
    "toString": {"channels": ["inapp"], "digest": "hourly"}
  }}`);
  const parsed = prefs(input);
  assert.deepEqual(Object.keys(parsed.sources).sort(), [
    "__proto__",
    "constructor",
    "prototype",
    "toString",
  ]);
  assert.ok(Object.hasOwn(parsed.sources, "__proto__"));
  assert.equal(Object.getPrototypeOf(parsed.sources), Object.prototype, "the prototype is intact");
  assert.deepEqual(parsed.sources["__proto__"], { channels: ["email"], digest: "daily" });
  assert.deepEqual(parsed.sources["constructor"], { channels: [], digest: "off" });

  const choice = (source: string, p = parsed) => chooseChannels(envelope({ source }), p);
  assert.deepEqual(choice("__proto__"), { inapp: false, email: true, digest: "daily" });
  assert.deepEqual(choice("constructor"), { inapp: false, email: false, digest: "off" });
  assert.deepEqual(choice("toString"), { inapp: true, email: false, digest: "hourly" });
  // A source the user has no entry for keeps the envelope's channels, whatever its name.
  const none = prefs({ sources: { feedback: { channels: ["inapp"] } } });
  for (const source of ["constructor", "__proto__", "valueOf", "hasOwnProperty"]) {
    assert.deepEqual(choice(source, none), { inapp: true, email: true, digest: "off" }, source);
  }
});

Deno.test("a bad source named __proto__ or constructor is refused with its field path", () => {
  const input = JSON.parse(`{"sources": {"constructor": {"channels": ["fax"]}}}`);
  const result = v.safeParse(PreferencesSchema, input);
  assert.equal(result.success, false);
  assert.deepEqual(result.issues?.map((i) => v.getDotPath(i)), ["sources.constructor.channels.0"]);
  const proto = v.safeParse(
    PreferencesSchema,
    JSON.parse(`{"sources": {"__proto__": {"channels": "email"}}}`),
  );
  assert.equal(proto.success, false);
  assert.deepEqual(proto.issues?.map((i) => v.getDotPath(i)), ["sources.__proto__.channels"]);
});
