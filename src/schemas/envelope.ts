/**
 * The envelope: one message format for every kind of item relais carries.
 *
 * The schema has exactly the fields of the design contract; unknown fields are refused so
 * that a typo in an emitter shows up as a 400 instead of being silently dropped, and so is
 * an array where an object is expected, instead of being read as one.
 */

import * as v from "valibot";
import { plainObject } from "./plain_object.ts";
import { ownKeysRecord } from "./record.ts";
import { TargetUserIdSchema } from "./user_id.ts";
import { fitsUtf8 } from "../utf8.ts";

/** Largest payload accepted, as UTF-8 JSON bytes. */
export const MAX_PAYLOAD_BYTES = 64 * 1024;

/** Item types. */
export const ENVELOPE_TYPES = ["NOTIFICATION", "SYSTEM", "REALTIME", "MESSAGE"] as const;
/** Audience types. */
export const AUDIENCE_TYPES = ["USER", "GROUP", "ROLE", "STRUCTURE", "FORMATION", "ALL"] as const;
/** Dimensions an audience can be narrowed by with `within`. */
export const WITHIN_TYPES = ["STRUCTURE", "FORMATION", "GROUP", "ROLE", "CATEGORY"] as const;

const id = (max: number) => v.pipe(v.string(), v.trim(), v.minLength(1), v.maxLength(max));
const timestamp = v.pipe(v.string(), v.isoTimestamp("expected an ISO 8601 timestamp"));

/**
 * An event id in a path (`/v1/events/:id`, `/v1/me/notifications/:id/…`): ids are UUIDs,
 * so anything longer is refused before it reaches the store's key size limit.
 */
export const EventIdParamSchema = v.pipe(v.string(), v.minLength(1), v.maxLength(200));

/** The `metadata` part of an envelope. */
export const MetadataSchema = plainObject(v.strictObject({
  id: v.pipe(v.string(), v.uuid("expected a UUID")),
  priority: v.optional(v.picklist(["HIGH", "NORMAL", "LOW"]), "NORMAL"),
  type: v.picklist(ENVELOPE_TYPES),
  emitter: id(200),
  source: id(100),
  topic: id(200),
  operation: v.optional(v.picklist(["create", "update", "delete"])),
  timestamp: v.optional(timestamp),
  expiration: v.optional(timestamp),
  collapse_key: v.optional(id(200)),
}));

/** Who an event is for. */
export const AudienceSchema = v.pipe(
  plainObject(v.strictObject({
    type: v.picklist(AUDIENCE_TYPES),
    // User ids for USER; the other types' ids (at most 200 characters in the directory)
    // fit the same rule.
    targets: v.optional(v.pipe(v.array(TargetUserIdSchema), v.maxLength(100_000)), []),
    within: v.optional(
      v.pipe(
        plainObject(
          v.record(v.picklist(WITHIN_TYPES), v.pipe(v.array(id(200)), v.minLength(1))),
        ),
        v.check((w) => Object.keys(w).length > 0, "expected at least one dimension"),
      ),
    ),
  })),
  v.forward(
    v.check(
      (a) => a.type === "ALL" || a.targets.length > 0,
      "expected at least one target for this audience type",
    ),
    ["targets"],
  ),
);

/** How an event travels: audience, channels and acknowledgment policy. */
export const RoutingSchema = plainObject(v.strictObject({
  audience: AudienceSchema,
  channels: v.optional(
    v.pipe(v.array(v.picklist(["inapp", "email"])), v.minLength(1), v.maxLength(2)),
    ["inapp"],
  ),
  retry: v.optional(
    plainObject(v.strictObject({
      ack_required: v.optional(v.boolean(), false),
      enabled: v.optional(v.boolean(), true),
      limit: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(50)), 5),
      backoff: v.optional(v.picklist(["EXPONENTIAL", "LINEAR", "FIXED"]), "EXPONENTIAL"),
    })),
    { ack_required: false, enabled: true, limit: 5, backoff: "EXPONENTIAL" },
  ),
}));

/** A free JSON object, at most {@linkcode MAX_PAYLOAD_BYTES} as UTF-8 JSON. */
export const PayloadSchema = v.pipe(
  // Every field is kept, one named `constructor` or `__proto__` included.
  ownKeysRecord(v.string(), v.unknown()),
  v.check(
    (p) => fitsUtf8(JSON.stringify(p), MAX_PAYLOAD_BYTES),
    `expected at most ${MAX_PAYLOAD_BYTES} bytes of JSON`,
  ),
);

/** A whole envelope as the backend posts it. */
export const EnvelopeSchema = v.pipe(
  plainObject(v.strictObject({
    metadata: MetadataSchema,
    payload: v.optional(PayloadSchema, {}),
    routing: RoutingSchema,
  })),
  v.forward(
    v.check(
      (e) =>
        e.metadata.expiration === undefined || e.metadata.timestamp === undefined ||
        Date.parse(e.metadata.expiration) > Date.parse(e.metadata.timestamp),
      "expected an expiration after the timestamp",
    ),
    ["metadata", "expiration"],
  ),
);

/** A validated envelope. */
export type Envelope = v.InferOutput<typeof EnvelopeSchema>;
/** The metadata of a validated envelope. */
export type Metadata = Envelope["metadata"];
/** A validated audience. */
export type Audience = v.InferOutput<typeof AudienceSchema>;
/** Retry policy of a validated envelope. */
export type RetryPolicy = Envelope["routing"]["retry"];

/** What clients receive: never the routing, which would reveal the audience. */
export interface ClientEnvelope {
  metadata: Metadata;
  payload: Record<string, unknown>;
}

/** Strips what must not leave the server. */
export function toClientEnvelope(envelope: Envelope): ClientEnvelope {
  return { metadata: envelope.metadata, payload: envelope.payload };
}

/**
 * The envelope as relais keeps it once its audience is resolved: without the audience's
 * list of targets (up to 100,000 user ids), which the event's result counts and a fan-out
 * job lists on its own. An event then keeps no user id in its stored body for the time
 * it is retained (a user erased since stays out of it), nor in the envelope cache, and the
 * cluster's bus carries the envelope without them.
 */
export function withoutTargets(envelope: Envelope): Envelope {
  const { routing } = envelope;
  // Nothing to drop: an empty list, or none in an envelope not built by the schema.
  if (!routing.audience.targets?.length) return envelope;
  return { ...envelope, routing: { ...routing, audience: { ...routing.audience, targets: [] } } };
}

/** Whether items of this envelope stay in the user's durable stream. */
export function isDurable(envelope: Envelope): boolean {
  const { type } = envelope.metadata;
  return type === "NOTIFICATION" || type === "MESSAGE" || needsAck(envelope);
}

/** Whether each recipient must acknowledge this envelope. */
export function needsAck(envelope: Envelope): boolean {
  return envelope.routing.retry.ack_required;
}
