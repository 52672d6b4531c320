/**
 * Sessions: what every transport does with a connected user, whatever carries the frames.
 *
 * Attaching a connection registers it with the hub and the user actor first, then
 * replays the stream after the client's `after`: an item committed meanwhile arrives by
 * replay, live, or both (clients drop duplicates by id), never by neither. The `welcome`
 * tells the stream's epoch; whether a resume is `recovered` is decided by `isRecovered`
 * (`epochs.ts`) from the client's epoch, the current one and the completeness of the replay.
 */

import type { Registry } from "../../actors/registry.ts";
import type { UserPrincipal } from "../auth/principal.ts";
import type { UserContext, UserEvent } from "../../actors/user.machine.ts";
import type { AnyActorRef } from "xstate";
import type { DeliveryRecorder } from "../delivery/recorder.ts";
import type { Metrics } from "../metrics.ts";
import { toClientEnvelope } from "../schemas/envelope.ts";
import { encodeEventFrame, encodeFrame } from "../schemas/frames.ts";
import type {
  DeliveryStore,
  EventStore,
  InboxStore,
  PendingAck,
  StreamItem,
  StreamStore,
} from "../store/store.ts";
import type { StreamHeads } from "../delivery/stream_heads.ts";
import { isRecovered } from "./epochs.ts";
import type { Hub, Outlet } from "./hub.ts";

/** Dependencies of {@linkcode createSessions}. */
export interface SessionDeps {
  store: StreamStore & DeliveryStore & InboxStore & Pick<EventStore, "getEnvelope">;
  registry: Registry;
  hub: Hub;
  metrics: Metrics;
  recorder: DeliveryRecorder;
  /**
   * The users' stream heads: the epoch `welcome` tells, the position a resume reaches,
   * and the recent window of ephemeral items (kept in memory only).
   */
  heads:
    & Pick<StreamHeads, "position" | "recent" | "epochOf">
    & Partial<Pick<StreamHeads, "whenStored">>;
  /**
   * Settles once the fan-outs a previous process left unfinished with items it may have
   * sent before writing them are done (none when there are none): connections wait for
   * it, since a resume then reads those items from the store.
   */
  resumed?(): Promise<void> | undefined;
  resumeMaxItems: number;
  recentWindowMs: number;
  /** Told to clients in `welcome.heartbeat_ms` so they can spot a dead connection. */
  heartbeatMs?: number;
  /** Renders the `msg` frame of a conversation item (`item.msg`) of a user for a replay. */
  renderItem?(user: string, item: StreamItem): Promise<string | undefined>;
  /**
   * Who may connect: every transport attaches here, so one gate admits them all (kill
   * switches, then the per-user connection cap). Absent: anyone.
   */
  admission?: Admission;
  /** Told of each ack (cluster mode: the user's actors on other nodes stop waiting for it). */
  onAck?(user: string, id: string): void;
}

/** The gate every new connection passes; the guard is one. */
export interface Admission {
  /** Throws `feature_disabled` or `rate_limited` when the user may not connect now. */
  admitConnection(principal: UserPrincipal): Promise<void>;
  /**
   * The cap again, synchronously, right before the connection is added: connections
   * admitted concurrently all passed the asynchronous check.
   */
  claimConnection(user: string): void;
}

/** A connection attached to a user. */
export interface Attached {
  connId: string;
  user: string;
  /** The epoch of the user's stream when the connection was welcomed. */
  epoch: string;
  /** The user's last seq when the connection was welcomed. */
  seq: number;
  recovered: boolean;
}

/** Where a client resumes its stream: after `after`, a position of epoch `epoch`. */
export interface StreamPosition {
  after?: number;
  /** The `welcome.epoch` of `after`; absent for clients that predate epochs. */
  epoch?: string;
}

/** Connection life cycle and the actions a client can take on its stream. */
export interface Sessions {
  /**
   * Admits and attaches a connection: sends `welcome`, the items after `position.after`
   * in order, the unacked items the client already had, then live items. Throws the
   * admission's error when the user may not connect.
   */
  attach(principal: UserPrincipal, outlet: Outlet, position?: StreamPosition): Promise<Attached>;
  /** The current epoch of `user`'s stream (what a `welcome` would tell now). */
  epochOf(user: string): string;
  detach(connId: string): void;
  /** Sends an event to the user's actor, if it is live. */
  notify(user: string, event: UserEvent): void;
  /** Records an ack; false if the user has no such item. */
  ack(user: string, id: string): Promise<boolean>;
  /** Marks an inbox item read; false if the user has no such item. */
  read(user: string, id: string): Promise<boolean>;
  /**
   * Sets the presence status of one connection of the user (`session`), or of all of
   * them; `online` counts as activity. False if `session` is not one of the user's.
   */
  presence(user: string, session: string | undefined, status: "online" | "away"): boolean;
}

/** An item to replay: a stored one, or one of the recent window with its frame. */
interface ReplayItem {
  item: StreamItem;
  frame?: () => string;
}

/** What a connection replays, and what its `welcome` tells. */
interface Replay {
  epoch: string;
  /** The stream position once the replay is done. */
  last: number;
  items: ReplayItem[];
  recovered: boolean;
}

/** Creates the sessions service. */
export function createSessions(deps: SessionDeps): Sessions {
  const { store, registry, hub, metrics, recorder } = deps;

  async function frameFor(id: string, seq: number): Promise<string | undefined> {
    const envelope = await store.getEnvelope(id);
    return envelope && encodeEventFrame(seq, JSON.stringify(toClientEnvelope(envelope)));
  }

  /**
   * What a connection of `user` replays after `position`: the stored items and those of
   * the head's recent window, merged in seq order up to the head's released seq (later
   * ones arrive live), and whether that is provably everything.
   */
  async function replayOf(user: string, position: StreamPosition, now: number): Promise<Replay> {
    const { after } = position;
    // Items sent before they were stored are replayed from the head that sent them; those
    // of an earlier head (the user's actor ended and began again meanwhile) from the store,
    // once stored.
    await heldWritten(user, () => deps.heads.position(user)?.start ?? Infinity);
    const head = deps.heads.position(user);
    const epoch = head?.epoch ?? deps.heads.epochOf(user);
    // Read before any `await`: what the head releases meanwhile is held for the release.
    const recent = head && after !== undefined ? deps.heads.recent(user, after) : undefined;
    const last = head ? head.released : await store.lastSeq(user);
    if (after === undefined) return { epoch, last, items: [], recovered: false };
    // A resume in the head's epoch whose every item since is in the window reads nothing.
    const stored = recent?.covered && position.epoch === epoch
      ? { items: [], complete: true }
      : await store.readStream(user, after, {
        limit: deps.resumeMaxItems,
        windowMs: deps.recentWindowMs,
        now,
        upTo: last,
      });
    const items: ReplayItem[] = stored.items.map((item) => ({ item }));
    // An item the head held may have been stored since the head was read: once.
    const read = new Set(stored.items.map((item) => item.seq));
    for (const r of recent?.items ?? []) {
      if (r.item.seq > last) break;
      if (read.has(r.item.seq)) continue;
      if (r.item.exp !== undefined && r.item.exp <= now) continue;
      items.push({ item: r.item, frame: r.frame });
    }
    items.sort((a, b) => a.item.seq - b.item.seq);
    const cut = items.length > deps.resumeMaxItems;
    if (cut) items.length = deps.resumeMaxItems;
    const recovered = isRecovered({
      after,
      ...(position.epoch === undefined ? {} : { clientEpoch: position.epoch }),
      epoch,
      complete: stored.complete && !cut && (recent?.complete ?? false),
    });
    return { epoch, last, items, recovered };
  }

  /**
   * The user's items waiting for an ack: those the user actor tracks (built from the
   * store when it started, kept in step since), or the store's when the actor holds none.
   */
  async function pendingOf(user: string, actor: AnyActorRef): Promise<PendingAck[]> {
    const context = (actor.getSnapshot() as { context?: Partial<UserContext> }).context;
    if (context?.pending) return Object.values(context.pending);
    return await store.listPending(user);
  }

  /**
   * Waits until the user's items that went out before they were stored are stored (with
   * `below`, those below that seq: an earlier head's, which a replay reads from the
   * store), so that an ack or a read finds them there.
   */
  async function heldWritten(user: string, below?: () => number) {
    const next = () => deps.heads.whenStored?.(user, below?.());
    for (let held = next(); held; held = next()) await held;
  }

  function notify(user: string, event: UserEvent) {
    registry.peek("user", user)?.send(event);
  }

  function detach(connId: string) {
    const conn = hub.get(connId);
    if (!conn) return;
    hub.remove(connId);
    metrics.connections.dec({ transport: conn.outlet.transport });
    notify(conn.user, { type: "conn.close", connId });
  }

  return {
    async attach(principal, outlet, position = {}) {
      await deps.resumed?.();
      const { after } = position;
      const user = principal.id;
      await deps.admission?.admitConnection(principal);
      deps.admission?.claimConnection(user);
      const connId = crypto.randomUUID();
      hub.add(connId, user, outlet);
      metrics.connections.inc({ transport: outlet.transport });
      try {
        const actor = await registry.get("user", user);
        actor.send({ type: "conn.open", connId } satisfies UserEvent);
        const now = Date.now();
        const replay = await replayOf(user, position, now);
        const { epoch, last, items } = replay;
        hub.send(
          connId,
          encodeFrame({
            type: "welcome",
            user,
            session: connId,
            epoch,
            seq: last,
            recovered: replay.recovered,
            ...(deps.heartbeatMs ? { heartbeat_ms: deps.heartbeatMs } : {}),
          }),
          // The stream position the client is at: where a resumed stream picks up.
          after ?? last,
        );
        for (const { item, frame: ready } of items) {
          if (ready) {
            if (hub.send(connId, ready(), item.seq)) recorder.add(item.id, user, true);
            continue;
          }
          if (item.msg) {
            const frame = await deps.renderItem?.(user, item);
            if (frame) hub.send(connId, frame, item.seq);
            continue;
          }
          const frame = await frameFor(item.id, item.seq);
          if (frame && hub.send(connId, frame, item.seq)) {
            recorder.add(item.id, user, !item.durable);
          }
        }
        // Unacked items the client had before (`after` covers newer ones) are sent again.
        const covered = after ?? last;
        for (const p of await pendingOf(user, actor)) {
          if (p.seq > covered || (p.exp !== undefined && p.exp <= now)) continue;
          const frame = await frameFor(p.id, p.seq);
          if (frame && hub.send(connId, frame)) recorder.add(p.id, user);
        }
        hub.release(connId, last);
        return { connId, user, epoch, seq: last, recovered: replay.recovered };
      } catch (error) {
        detach(connId);
        throw error;
      }
    },
    epochOf: (user) => deps.heads.epochOf(user),
    detach,
    notify,
    async ack(user, id) {
      await heldWritten(user);
      const ok = await store.ack(user, id, Date.now());
      if (ok) {
        metrics.acks.inc();
        notify(user, { type: "ack.received", id });
        deps.onAck?.(user, id);
      }
      return ok;
    },
    async read(user, id) {
      await heldWritten(user);
      return await store.markRead(user, id, Date.now());
    },
    presence(user, session, status) {
      const conns = session === undefined
        ? hub.ofUser(user)
        : [hub.get(session)].filter((c) => c?.user === user);
      if (session !== undefined && conns.length === 0) return false;
      for (const conn of conns) {
        notify(user, { type: "conn.status", connId: conn!.id, status });
        if (status === "online") conn!.outlet.activity?.();
      }
      return true;
    },
  };
}
