/**
 * A load generator: one process holding many client connections, driven by the harness
 * over stdin/stdout (see `_rpc.ts`).
 *
 * The same client code drives every peer. relais (on Deno or on Node) and the bare peer
 * speak relais's frames over Deno's WebSocket (`hello` → `welcome`, `event`); the Socket.IO
 * peer is reached with socket.io-client over the same built-in WebSocket (its `WebSocket`
 * transport), so the socket underneath is the same for all and only the protocol differs. Every client
 * parses every frame, as a real client would.
 *
 * Run: `deno run --allow-net --allow-env --allow-read bench/loadgen.ts` (BENCH_JWT_SECRET
 * signs the relais tokens).
 */

import { SignJWT } from "jose";
import { io, type Socket as SioSocket, WebSocket as SioWebSocket } from "socket.io-client";
import type { Peer } from "./_context.ts";
import { userIds } from "./_ids.ts";
import { now, serveCommands } from "./_rpc.ts";

interface Conn {
  user: string;
  ws?: WebSocket;
  sio?: SioSocket;
  open: boolean;
  welcomed: boolean;
  welcomeSeq: number;
  /** The epoch of the last welcome: a resume sends it back with `after`, as the SDK does. */
  epoch?: string;
  recovered: boolean | undefined;
  /** Highest seq received in order (relais streams). */
  lastSeq: number;
  gaps: number;
  dups: number;
  events: number;
  /** Resolves the connect (or resume) in progress. */
  settle?: (ok: boolean, error?: string) => void;
  resume: boolean;
}

interface TagStat {
  count: number;
  first: number;
  last: number;
}

interface Group {
  peer: Peer;
  conns: Map<string, Conn>;
  tags: Map<string, TagStat>;
  waiters: Map<string, { count: number; done(): void }[]>;
  /** Latency samples by tag prefix (the tag up to its last `-`). */
  samples: Map<string, number[]>;
  collect: boolean;
  trackSeq: boolean;
  chat?: ChatState;
}

interface ChatState {
  /** client_id → send time, until the first copy of the message is seen. */
  inFlight: Map<string, { at: number; sender: string }>;
  seen: number;
  samples: number[];
  errors: number;
  lastError?: string;
  onSeen?: (sender: string) => void;
}

const groups = new Map<string, Group>();
let chatSerial = 0;
const secret = new TextEncoder().encode(Deno.env.get("BENCH_JWT_SECRET") ?? "unset");

// deno-lint-ignore no-explicit-any
type Frame = Record<string, any>;

function tagOf(group: Group, tag: string): TagStat {
  let stat = group.tags.get(tag);
  if (!stat) group.tags.set(tag, stat = { count: 0, first: 0, last: 0 });
  return stat;
}

function onEvent(group: Group, conn: Conn, frame: Frame, at: number) {
  conn.events++;
  if (group.trackSeq && typeof frame.seq === "number") {
    if (frame.seq === conn.lastSeq + 1) conn.lastSeq = frame.seq;
    else if (frame.seq <= conn.lastSeq) {
      // At-least-once: a copy already seen (a replay overlapping live delivery) counts once.
      conn.dups++;
      return;
    } else {
      conn.gaps++;
      conn.lastSeq = frame.seq;
    }
  }
  // A change the ingest turned into an event carries its stamps in the row (`after`).
  const body = frame.envelope?.payload;
  const payload = typeof body?.k === "string" ? body : body?.after ?? body;
  if (!payload) return;
  if (group.collect && typeof payload.t === "number" && typeof payload.k === "string") {
    const prefix = payload.k.slice(0, payload.k.lastIndexOf("-") + 1);
    let list = group.samples.get(prefix);
    if (!list) group.samples.set(prefix, list = []);
    list.push(Math.round((at - payload.t) * 100) / 100);
  }
  if (typeof payload.k === "string") {
    const stat = tagOf(group, payload.k);
    stat.count++;
    if (stat.count === 1) stat.first = at;
    stat.last = at;
    const waiting = group.waiters.get(payload.k);
    if (waiting) {
      for (const w of waiting.filter((w) => stat.count >= w.count)) w.done();
    }
  }
  if (conn.resume && conn.welcomed && conn.lastSeq >= conn.welcomeSeq) {
    conn.settle?.(true);
  }
}

function onChat(group: Group, conn: Conn, frame: Frame, at: number) {
  const chat = group.chat;
  if (!chat) return;
  // The text carries the client id and the send time: `bench <client_id> <t>`.
  const [, clientId] = String(frame.text ?? "").split(" ");
  const sent = chat.inFlight.get(clientId);
  if (!sent) return;
  if (conn.user === sent.sender) return; // the sender's own copy: wait for another member
  chat.inFlight.delete(clientId);
  chat.seen++;
  chat.samples.push(Math.round((at - sent.at) * 100) / 100);
  chat.onSeen?.(sent.sender);
}

function onFrame(group: Group, conn: Conn, frame: Frame) {
  const at = now();
  switch (frame.type) {
    case "event":
      return onEvent(group, conn, frame, at);
    case "welcome":
      conn.welcomed = true;
      conn.welcomeSeq = frame.seq ?? 0;
      conn.recovered = frame.recovered;
      if (typeof frame.epoch === "string") conn.epoch = frame.epoch;
      if (!conn.resume || conn.lastSeq >= conn.welcomeSeq) conn.settle?.(true);
      return;
    case "msg":
      return onChat(group, conn, frame, at);
    case "ping":
      // relais's heartbeat: a client that stays silent is closed after two intervals.
      return conn.ws?.send('{"type":"pong"}');
    case "error":
      if (group.chat) {
        group.chat.errors++;
        group.chat.lastError = `${frame.code}: ${frame.message}`;
      }
      if (!conn.welcomed) conn.settle?.(false, `error ${frame.code}: ${frame.message}`);
  }
}

// A client keeps its token across reconnections (as the SDK and a browser tab do), until it
// expires: a storm's reconnects present the tokens their first connections did.
const signed = new Map<string, Promise<string>>();

function token(user: string): Promise<string> {
  let known = signed.get(user);
  if (!known) {
    known = sign(user);
    signed.set(user, known);
  }
  return known;
}

async function sign(user: string): Promise<string> {
  return await new SignJWT({})
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(user)
    .setIssuedAt()
    .setExpirationTime("2h")
    .sign(secret);
}

function openRaw(group: Group, conn: Conn, url: string, hello: Record<string, unknown>) {
  const ws = new WebSocket(url, ["relais.v1"]);
  conn.ws = ws;
  ws.onopen = () => {
    conn.open = true;
    ws.send(JSON.stringify({ type: "hello", ...hello }));
  };
  ws.onmessage = (e) => onFrame(group, conn, JSON.parse(e.data as string));
  ws.onerror = () => {};
  ws.onclose = (e) => {
    conn.open = false;
    conn.settle?.(false, `closed ${e.code} ${e.reason}`);
  };
}

function openSio(group: Group, conn: Conn, url: string, authToken: string) {
  const socket = io(url, {
    transports: [SioWebSocket],
    forceNew: true,
    reconnection: false,
    timeout: 30_000,
    auth: { token: authToken },
  });
  conn.sio = socket;
  socket.on("connect", () => {
    conn.open = true;
    conn.welcomed = true;
    conn.settle?.(true);
  });
  socket.on("connect_error", (e) => conn.settle?.(false, `connect_error ${e.message}`));
  socket.on("disconnect", () => {
    conn.open = false;
  });
  socket.on("event", (frame: Frame) => onFrame(group, conn, frame));
}

function usersOf(spec: { prefix: string; from: number; to: number } | string[]): string[] {
  return Array.isArray(spec) ? spec : userIds(spec);
}

async function pool<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>) {
  let next = 0;
  const runners = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await work(items[next++]);
  });
  await Promise.all(runners);
}

function getGroup(name: string): Group {
  const group = groups.get(name);
  if (!group) throw new Error(`Unknown group "${name}"`);
  return group;
}

interface ConnectArgs {
  group: string;
  peer: Peer;
  url: string;
  users: { prefix: string; from: number; to: number } | string[];
  /** Connections opened at once (all of them for a storm). */
  concurrency: number;
  timeoutMs: number;
  /** Reconnect known users with `after` = the last seq they saw, until caught up. */
  resume?: boolean;
  collect?: boolean;
  trackSeq?: boolean;
}

async function connect(args: ConnectArgs) {
  let group = groups.get(args.group);
  if (!group) {
    group = {
      peer: args.peer,
      conns: new Map(),
      tags: new Map(),
      waiters: new Map(),
      samples: new Map(),
      collect: args.collect ?? false,
      trackSeq: args.trackSeq ?? false,
    };
    groups.set(args.group, group);
  }
  const g = group;
  const users = usersOf(args.users);
  // Tokens are signed before the clock starts: the bench measures the server, not jose.
  const tokens = new Map<string, string>();
  // The bare peers (and relais's Node stack without relais) take no token.
  if (args.peer === "relais" || args.peer === "relais-node" || args.peer === "socketio") {
    await pool(users, 64, async (u) => void tokens.set(u, await token(u)));
  }
  const started = now();
  let connected = 0;
  let failed = 0;
  let recoveredFalse = 0;
  let firstError: string | undefined;
  let lastAt = started;
  await pool(users, args.concurrency, async (user) => {
    let conn = g.conns.get(user);
    if (!conn) {
      conn = {
        user,
        open: false,
        welcomed: false,
        welcomeSeq: 0,
        recovered: undefined,
        lastSeq: 0,
        gaps: 0,
        dups: 0,
        events: 0,
        resume: false,
      };
      g.conns.set(user, conn);
    }
    const c = conn;
    c.welcomed = false;
    c.resume = args.resume ?? false;
    const ok = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => finish(false, "timeout"), args.timeoutMs);
      function finish(ok: boolean, error?: string) {
        clearTimeout(timer);
        c.settle = undefined;
        if (!ok && !firstError) firstError = `${user}: ${error}`;
        resolve(ok);
      }
      c.settle = finish;
      if (args.peer === "socketio") openSio(g, c, args.url, tokens.get(user)!);
      else {
        // The bare server takes no token: its hello names the user, for targeted events.
        const hello: Record<string, unknown> = tokens.has(user)
          ? { token: tokens.get(user) }
          : { token: "bare", user };
        if (c.resume) {
          hello.after = c.lastSeq;
          if (c.epoch !== undefined) hello.epoch = c.epoch;
        }
        openRaw(g, c, args.url, hello);
      }
    });
    if (ok) {
      connected++;
      if (c.resume && c.recovered === false) recoveredFalse++;
      lastAt = Math.max(lastAt, now());
    } else failed++;
  });
  return { connected, failed, started, lastAt, ms: lastAt - started, recoveredFalse, firstError };
}

function closeConn(conn: Conn): Promise<void> {
  return new Promise((resolve) => {
    if (conn.sio) {
      conn.sio.disconnect();
      conn.open = false;
      return resolve();
    }
    const ws = conn.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return resolve();
    const timer = setTimeout(resolve, 5000);
    ws.addEventListener("close", () => {
      clearTimeout(timer);
      resolve();
    });
    ws.close();
  });
}

await serveCommands({
  connect,

  /**
   * Waits until `count` clients of the group (all of its connections by default) received
   * the event tagged `tag`.
   */
  expect(args: { group: string; tag: string; count?: number; timeoutMs: number }) {
    const group = getGroup(args.group);
    const stat = tagOf(group, args.tag);
    const count = args.count ?? group.conns.size;
    const report = (timedOut: boolean) => ({ ...stat, expected: count, timedOut });
    if (stat.count >= count) return report(false);
    return new Promise((resolve) => {
      const list = group.waiters.get(args.tag) ?? [];
      group.waiters.set(args.tag, list);
      const waiter = {
        count,
        done: () => finish(false),
      };
      const timer = setTimeout(() => finish(true), args.timeoutMs);
      function finish(timedOut: boolean) {
        clearTimeout(timer);
        const i = list.indexOf(waiter);
        if (i >= 0) list.splice(i, 1);
        resolve(report(timedOut));
      }
      list.push(waiter);
    });
  },

  /** Takes the latency samples (receive time − payload `t`) of events tagged `prefix…`. */
  samples(args: { group: string; prefix: string }) {
    const group = getGroup(args.group);
    const samples = group.samples.get(args.prefix) ?? [];
    group.samples.delete(args.prefix);
    return samples;
  },

  /** Per-connection stream health: positions, gaps and duplicates. */
  stats(args: { group: string; expectSeq?: number }) {
    const group = getGroup(args.group);
    let open = 0, gaps = 0, dups = 0, behind = 0, behindWelcome = 0, events = 0;
    let minSeq = Infinity, maxSeq = 0;
    for (const c of group.conns.values()) {
      if (c.open) open++;
      gaps += c.gaps;
      dups += c.dups;
      events += c.events;
      minSeq = Math.min(minSeq, c.lastSeq);
      maxSeq = Math.max(maxSeq, c.lastSeq);
      if (args.expectSeq !== undefined && c.lastSeq < args.expectSeq) behind++;
      if (c.lastSeq < c.welcomeSeq) behindWelcome++;
    }
    return {
      conns: group.conns.size,
      open,
      gaps,
      dups,
      behind,
      behindWelcome,
      events,
      minSeq: group.conns.size ? minSeq : 0,
      maxSeq,
    };
  },

  /** Closes every connection of the group; `forget` drops them too. */
  async close(args: { group: string; forget?: boolean }) {
    const group = groups.get(args.group);
    if (!group) return { closed: 0 };
    const conns = [...group.conns.values()];
    await Promise.all(conns.map(closeConn));
    if (args.forget) groups.delete(args.group);
    return { closed: conns.length };
  },

  /**
   * Chat: in each conversation its first member sends messages, `window` in flight at a
   * time, for `durationMs`; a message counts when another member receives it.
   */
  async chat(args: {
    group: string;
    conversations: { id: string; members: string[] }[];
    window: number;
    durationMs: number;
  }) {
    const group = getGroup(args.group);
    const chat: ChatState = { inFlight: new Map(), seen: 0, samples: [], errors: 0 };
    group.chat = chat;
    let sent = 0;
    const until = now() + args.durationMs;
    const senders = new Map<string, { conv: string; inFlight: number }>();
    const send = (sender: string) => {
      const s = senders.get(sender)!;
      const conn = group.conns.get(sender);
      if (!conn?.ws || now() >= until) return;
      while (s.inFlight < args.window) {
        // Unique across runs: a repeated client_id is an idempotent resend, not a message.
        const clientId = `c${Deno.pid}-${chatSerial++}`;
        const at = now();
        chat.inFlight.set(clientId, { at, sender });
        conn.ws.send(JSON.stringify({
          type: "msg.send",
          conversation: s.conv,
          text: `bench ${clientId} ${at}`,
          client_id: clientId,
        }));
        s.inFlight++;
        sent++;
      }
    };
    chat.onSeen = (sender) => {
      const s = senders.get(sender);
      if (!s) return;
      s.inFlight--;
      send(sender);
    };
    for (const c of args.conversations) senders.set(c.members[0], { conv: c.id, inFlight: 0 });
    const started = now();
    for (const sender of senders.keys()) send(sender);
    await new Promise((r) => setTimeout(r, args.durationMs));
    // Messages still in flight get a moment to arrive; later ones count as not received.
    const drainUntil = now() + 2000;
    while (chat.inFlight.size > 0 && now() < drainUntil) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const ended = now();
    group.chat = undefined;
    return {
      sent,
      seen: chat.seen,
      lost: chat.inFlight.size,
      errors: chat.errors,
      lastError: chat.lastError,
      started,
      ended,
      samples: chat.samples,
    };
  },
});
