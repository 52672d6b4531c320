/**
 * The guard: what a user or a connection may do right now, from the kill switches, the
 * rate limits and the caps. Every transport and route asks it rather than reading the
 * controls or the limiter itself.
 *
 * It also keeps live connections in line with the switches: when a switch changes (or
 * expires), a connection whose user lost `realtime` is closed with 4003 and the reason,
 * and every other connection whose set of disabled features changed gets a `control`
 * frame, so the UI can hide or show a feature at once.
 */

import { LRUCache } from "lru-cache";
import type { Context, MiddlewareHandler } from "hono";
import { createMiddleware } from "hono/factory";
import { authenticateUser } from "../auth/middleware.ts";
import type { AppEnv, UserPrincipal } from "../auth/principal.ts";
import type { UserAuth } from "../auth/user_auth.ts";
import { AppError } from "../errors.ts";
import type { Connection, Hub } from "../realtime/hub.ts";
import type { RateLimits } from "../ratelimit/rate_limits.ts";
import type { ClientFrame } from "../schemas/frames.ts";
import { CLOSE } from "../schemas/frames.ts";
import type { Disabled, Feature, Subject } from "./control.ts";
import { USER_FEATURES } from "./control.ts";
import { type Controls, featureDisabledError } from "./controls.ts";
import { featureOfItemType, filterFrame } from "./frame_filter.ts";

/** Dependencies of {@linkcode createGuard}. */
export interface GuardDeps {
  controls: Controls;
  limits: RateLimits;
  hub: Hub;
  /** Verifies user credentials for the HTTP gates (never tickets: they are single use). */
  auth: UserAuth;
  maxConnectionsPerUser: number;
  /** Detaches a connection cut off by a switch (sessions.detach). */
  detach(connId: string): void;
  onError(message: string, error: unknown): void;
}

/** The `control` frame: which features are on, and why the others are off. */
export interface ControlFrame {
  type: "control";
  features: Record<(typeof USER_FEATURES)[number], boolean>;
  disabled: { feature: Feature; reason: string; until?: string }[];
}

/** What the guard offers; built by {@linkcode createGuard}. */
export interface Guard {
  /** The subject of a principal, remembered for the user's live connections. */
  subject(principal: UserPrincipal): Promise<Subject>;
  /** The remembered subject of a user (id only if never seen). */
  subjectOf(userId: string): Subject;
  /** Throws `feature_disabled` when `feature` is off for the user. */
  assertEnabled(feature: Feature, principal: UserPrincipal): Promise<void>;
  isEnabled(feature: Feature, subject: Subject): boolean;
  /** Throws `feature_disabled` when an everyone-wide (`SYSTEM`) switch turns `feature` off. */
  assertSystemEnabled(feature: Feature): void;
  /** Throws `feature_disabled` when publishing an item of this envelope type is switched off for everyone. */
  assertPublishable(itemType: string): void;
  /**
   * Admits a new live connection, whatever its transport: `realtime` must be on
   * (`feature_disabled`) and the user under the connection cap (`rate_limited`).
   * `refresh`: a new hello on a live connection (no cap check).
   */
  admitConnection(principal: UserPrincipal, options?: { refresh?: boolean }): Promise<void>;
  /** The connection cap alone, synchronously: right before a connection is added. */
  claimConnection(userId: string): void;
  /**
   * Counts a failed authentication of the client address; past the limit, returns the
   * `rate_limited` error that refuses this failing attempt. Valid credentials are never
   * counted nor refused, whatever their address did.
   */
  authFailed(ip: string | undefined): Promise<AppError | undefined>;
  /** Counts a connection attempt of the IP; throws `rate_limited` when over. */
  connectAttempt(ip: string | undefined): Promise<void>;
  /** Checks a client frame before it is handled: switches, then rate limits. */
  checkFrame(principal: UserPrincipal, frame: ClientFrame): Promise<void>;
  /** Counts one message of the user; throws `rate_limited` when over. */
  consumeMessage(userId: string): Promise<void>;
  /** Counts one new conversation of the user; throws `rate_limited` when over. */
  consumeConversation(userId: string): Promise<void>;
  /** Whether mail may go to the user (the `email` switch). */
  emailEnabled(subject: Subject): boolean;
  /**
   * The `control` frame to send a new connection, if any feature is off for it; the
   * guard remembers it was sent, to tell the connection of later changes only.
   */
  controlFrameFor(connId: string, subject: Subject): string | undefined;
  /** The hub's filter: drops frames of features that are off for the connection's user. */
  filter(conn: Connection, frame: string): string | undefined;
  /** Re-applies the switches to every live connection (after a change). */
  enforceLive(): void;
  /**
   * A middleware that, when the request carries a valid user credential, refuses it
   * with `feature_disabled` while `feature` is off for that user, and counts one hit of
   * the limit `rate` names for the request (if any) for that user. It authenticates as
   * the routes do and leaves the user in `c.get("user")`, so the route serves the very
   * principal the gate judged. Requests without a valid user credential pass untouched:
   * the route's own authentication answers them.
   */
  userGate(
    feature: Feature,
    rate?: (c: Context<AppEnv>) => "messages" | "conversations" | undefined,
  ): MiddlewareHandler<AppEnv>;
  /** A middleware that remembers the subject of any user a route authenticated. */
  rememberUsers(): MiddlewareHandler<AppEnv>;
  /** Whether the guard remembers a subject for the user (they were seen lately). */
  knows(userId: string): boolean;
  /**
   * The user's directory entry changed (here or on another node): memberships it adds join
   * the remembered subject at once, so that a switch on a structure or role they just
   * joined reaches their open connections. Memberships it drops go when the subject is
   * next looked up (a switch may hold a little longer, never less).
   */
  directoryChanged(
    userId: string,
    entry: Pick<Subject, "roles" | "structures"> & {
      category?: string | null;
    },
  ): void;
}

const MAX_SUBJECTS = 100_000;

function controlFrame(off: Disabled[]): ControlFrame {
  return {
    type: "control",
    features: Object.fromEntries(
      USER_FEATURES.map((f) => [f, !off.some((d) => d.feature === f)]),
    ) as ControlFrame["features"],
    disabled: off.map((d) => ({
      feature: d.feature,
      reason: d.reason,
      ...(d.until ? { until: d.until } : {}),
    })),
  };
}

const encoder = new TextEncoder();

/** A WebSocket close reason holds at most 123 bytes of UTF-8. */
export function closeReason(text: string): string {
  if (encoder.encode(text).byteLength <= 123) return text;
  let out = text.slice(0, 123);
  while (encoder.encode(`${out}…`).byteLength > 123) out = out.slice(0, -1);
  return `${out}…`;
}

/** How long a looked-up subject is trusted before the directory is asked again. */
const SUBJECT_TTL_MS = 30_000;

/** Builds the guard. */
export function createGuard(deps: GuardDeps): Guard {
  const { controls, limits, hub } = deps;
  const subjects = new LRUCache<string, { subject: Subject; claims: string; freshUntil: number }>({
    max: MAX_SUBJECTS,
  });
  /** The control state last told to each connection (a key of its disabled features). */
  const told = new Map<string, string>();

  function remember(subject: Subject, claims: string): Subject {
    const known = subjects.get(subject.id);
    subjects.set(subject.id, { subject, claims, freshUntil: Date.now() + SUBJECT_TTL_MS });
    // New roles or structures may put the user's live connections under other switches
    // (and a transport that attached before the user was known learns of them now).
    if (!known || JSON.stringify(known.subject) !== JSON.stringify(subject)) {
      enforceUser(subject.id);
    }
    return subject;
  }

  /**
   * The subject of a principal. Its memberships are the directory's plus its claims
   * (the authentication adds the directory's), so the switches judge everyone alike.
   */
  function subject(principal: UserPrincipal): Promise<Subject> {
    const claims = JSON.stringify([principal.roles, principal.structures, principal.category]);
    const cached = subjects.get(principal.id);
    if (cached && cached.claims === claims && cached.freshUntil > Date.now()) {
      return Promise.resolve(cached.subject);
    }
    return Promise.resolve(remember({
      id: principal.id,
      roles: [...principal.roles],
      structures: [...principal.structures],
      ...(principal.category ? { category: principal.category } : {}),
    }, claims));
  }

  const subjectOf = (userId: string): Subject =>
    subjects.get(userId)?.subject ?? { id: userId, roles: [], structures: [] };

  const stateKey = (off: Disabled[]) =>
    JSON.stringify(off.map((d) => [d.feature, d.reason, d.until ?? null]));

  function cut(conn: Connection, off: Disabled) {
    try {
      conn.outlet.close(CLOSE.forbidden, closeReason(`Realtime disabled: ${off.reason}`));
    } catch { /* already closed */ }
    told.delete(conn.id);
    deps.detach(conn.id);
  }

  function enforce(conn: Connection) {
    const off = controls.disabled(subjectOf(conn.user));
    const realtime = off.find((d) => d.feature === "realtime");
    if (realtime) return cut(conn, realtime);
    const key = stateKey(off);
    if ((told.get(conn.id) ?? "[]") === key) return;
    tell(conn.id, key);
    hub.send(conn.id, JSON.stringify(controlFrame(off)));
  }

  function enforceUser(userId: string) {
    for (const conn of hub.ofUser(userId)) enforce(conn);
  }

  /** Forgets what was told to connections that are gone. */
  function sweepTold() {
    for (const id of told.keys()) if (!hub.get(id)) told.delete(id);
  }

  /** Remembers what a connection was told, sweeping now and then so the map stays bounded. */
  function tell(connId: string, key: string) {
    if (told.size > 2 * hub.size() + 1000) sweepTold();
    told.set(connId, key);
  }

  function enforceLive() {
    sweepTold();
    for (const conn of hub.all()) enforce(conn);
  }

  async function optionalUser(c: Context<AppEnv>): Promise<UserPrincipal | undefined> {
    try {
      const user = c.get("user") ?? await authenticateUser(c, { auth: deps.auth });
      if (user) c.set("user", user);
      return user;
    } catch {
      // Not a user credential (a service key, or invalid): the route decides.
      return undefined;
    }
  }

  function assertRoom(userId: string) {
    const open = hub.ofUser(userId).length;
    if (open >= deps.maxConnectionsPerUser) {
      throw new AppError(
        "rate_limited",
        `Too many connections: user "${userId}" has ${open} open, at most ${deps.maxConnectionsPerUser}`,
        { retryAfterMs: 5_000 },
      );
    }
  }

  controls.onChange(() => enforceLive());

  const guard: Guard = {
    subject,
    subjectOf,
    async assertEnabled(feature, principal) {
      controls.assertEnabled(feature, await subject(principal));
    },
    isEnabled: (feature, s) => controls.isEnabled(feature, s),
    assertSystemEnabled(feature) {
      const off = controls.disabled({ id: "", roles: [], structures: [] }).find((d) =>
        d.feature === feature && d.scope.type === "SYSTEM"
      );
      if (off) throw featureDisabledError(off);
    },
    assertPublishable(itemType) {
      const feature = featureOfItemType(itemType);
      if (feature) guard.assertSystemEnabled(feature);
    },
    async admitConnection(principal, options = {}) {
      controls.assertEnabled("realtime", await subject(principal));
      if (!options.refresh) assertRoom(principal.id);
    },
    claimConnection: assertRoom,
    async authFailed(ip) {
      if (!limits.rule("authFailures")) return undefined;
      try {
        await limits.consume("authFailures", ip ?? "unknown");
        return undefined;
      } catch (error) {
        if (error instanceof AppError) return error;
        throw error;
      }
    },
    async connectAttempt(ip) {
      await limits.consume("connects", ip ?? "unknown");
    },
    async checkFrame(principal, frame) {
      if (frame.type !== "msg.send" && frame.type !== "typing") return;
      controls.assertEnabled("messaging", await subject(principal));
      if (frame.type === "msg.send") await limits.consume("messages", principal.id);
    },
    consumeMessage: (userId) => limits.consume("messages", userId),
    consumeConversation: (userId) => limits.consume("conversations", userId),
    emailEnabled: (s) => controls.isEnabled("email", s),
    controlFrameFor(connId, s) {
      if (told.has(connId)) return undefined;
      const off = controls.disabled(s);
      if (off.length === 0) return undefined;
      tell(connId, stateKey(off));
      return JSON.stringify(controlFrame(off));
    },
    filter(conn, frame) {
      const off = controls.disabled(subjectOf(conn.user));
      if (off.length === 0) return frame;
      const realtime = off.find((d) => d.feature === "realtime");
      if (realtime) {
        // A connection that slipped in before the switch (or another transport's).
        queueMicrotask(() => cut(conn, realtime));
        return undefined;
      }
      if (!told.has(conn.id)) {
        // The first frame of a connection (its welcome, whatever the transport): tell it
        // which features are off right after.
        tell(conn.id, stateKey(off));
        const control = JSON.stringify(controlFrame(off));
        queueMicrotask(() => hub.send(conn.id, control));
      }
      return filterFrame(frame, new Set(off.map((d) => d.feature)));
    },
    enforceLive,
    userGate(feature, rate) {
      return createMiddleware<AppEnv>(async (c, next) => {
        const user = await optionalUser(c);
        if (user) {
          controls.assertEnabled(feature, await subject(user));
          const name = rate?.(c);
          if (name) await limits.consume(name, user.id);
        }
        await next();
      });
    },
    knows: (userId) => subjects.has(userId),
    directoryChanged(userId, entry) {
      const known = subjects.get(userId);
      if (!known) return;
      const before = known.subject;
      const roles = [...new Set([...before.roles, ...entry.roles])];
      const structures = [...new Set([...before.structures, ...entry.structures])];
      const category = entry.category ?? before.category;
      remember({
        id: userId,
        roles,
        structures,
        ...(category ? { category } : {}),
      }, known.claims);
    },
    rememberUsers() {
      return createMiddleware<AppEnv>(async (c, next) => {
        await next();
        const user = c.get("user") as UserPrincipal | undefined;
        if (user) await subject(user);
      });
    },
  };
  return guard;
}
