/**
 * Kill switches end to end, on a real server and real sockets: every scope type × every
 * feature on live connections, leaving the other scopes and features untouched.
 */

import assert from "node:assert/strict";
import { mailQueueDrained } from "../_support/mail_queue.ts";
import {
  envelope,
  eventually,
  SERVICE_KEY,
  startServer,
  type TestServer,
} from "../_support/server.ts";
import type { TestClient } from "../_support/ws_client.ts";
import { openSse } from "../_support/sse_client.ts";
import {
  addUsers,
  ANA,
  BEN,
  clearSwitch,
  idOf,
  isOpen,
  nextControl,
  open,
  SCOPES,
  setSwitch,
  tokenOf,
} from "./_controls_support.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function withServer(fn: (server: TestServer, clients: TestClient[]) => Promise<void>) {
  const server = await startServer();
  const clients: TestClient[] = [];
  try {
    await addUsers(server);
    await fn(server, clients);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.close();
  }
}

const notification = (to: string[]) => envelope(to);
const realtime = (to: string[]) =>
  envelope(to, { metadata: { type: "REALTIME", source: "activity", topic: "activity.updated" } });

async function inbox(server: TestServer, user: typeof ANA) {
  return await server.request("/v1/me/notifications", { bearer: await tokenOf(server, user) });
}

Deno.test({
  ...opts,
  name:
    "the realtime switch closes the sockets of its scope with 4003 and the reason, and refuses new ones",
  async fn() {
    await withServer(async (server, clients) => {
      for (const scope of SCOPES) {
        const everyone = scope.type === "SYSTEM";
        const ana = await open(server, ANA, clients);
        const ben = await open(server, BEN, clients);
        assert.ok(ana.welcome && ben.welcome);

        await setSwitch(server, scope, ["realtime"], `Maintenance of ${idOf(scope)}`);
        const closed = await ana.client.closed;
        assert.equal(closed.code, 4003, idOf(scope));
        assert.match(closed.reason, new RegExp(`Maintenance of ${idOf(scope)}`));
        const again = await open(server, ANA, clients);
        assert.equal(again.closed?.code, 4003, `new connection under ${idOf(scope)}`);

        if (everyone) {
          assert.equal((await ben.client.closed).code, 4003);
        } else {
          // Another scope keeps its live connection and receives.
          assert.ok(isOpen(ben.client), `ben stays connected under ${idOf(scope)}`);
          const sent = realtime([BEN.id]);
          assert.equal((await server.publish(sent)).status, 202);
          const got = await ben.client.next((f) => f.type === "event");
          assert.equal(got.envelope.metadata.id, (sent.metadata as { id: string }).id);
        }
        // The rest of the API keeps working for the switched-off user.
        assert.equal((await inbox(server, ANA)).status, 200);
        assert.equal((await server.request("/healthz")).status, 200);

        await clearSwitch(server, scope);
        const back = await open(server, ANA, clients);
        assert.ok(back.welcome, `ana reconnects once ${idOf(scope)} is cleared`);
        await Promise.all([ana, ben, again, back].map((c) => c.client.close()));
      }
    });
  },
});

Deno.test({
  ...opts,
  name: "the notifications switch stops notifications for its scope only and tells the clients",
  async fn() {
    await withServer(async (server, clients) => {
      for (const scope of SCOPES) {
        const everyone = scope.type === "SYSTEM";
        const ana = await open(server, ANA, clients);
        const ben = await open(server, BEN, clients);

        await setSwitch(server, scope, ["notifications"], "Too many notifications");
        const control = await nextControl(ana.client);
        assert.equal(control.features.notifications, false, idOf(scope));
        assert.equal(control.features.realtime, true);
        assert.deepEqual(control.disabled, [{
          feature: "notifications",
          reason: "Too many notifications",
        }]);
        const forbidden = await inbox(server, ANA);
        assert.equal(forbidden.status, 403);
        assert.equal((forbidden.body.error as { code: string }).code, "feature_disabled");

        if (everyone) {
          assert.equal((await nextControl(ben.client)).features.notifications, false);
          const refused = await server.publish(notification([ANA.id, BEN.id]));
          assert.equal(refused.status, 403);
          assert.equal((refused.body.error as { code: string }).code, "feature_disabled");
        } else {
          const sent = notification([ANA.id, BEN.id]);
          assert.equal((await server.publish(sent)).status, 202);
          const id = (sent.metadata as { id: string }).id;
          assert.equal((await ben.client.next((f) => f.type === "event")).envelope.metadata.id, id);
          assert.equal((await inbox(server, BEN)).status, 200);
          assert.ok(
            (await ben.client.settled((f) => f.type === "control")).length === 0,
            "ben is not told anything",
          );
        }
        // Another feature stays on for ana. It is the barrier too: a notification that
        // reached her would have come before it.
        const live = realtime([ANA.id]);
        assert.equal((await server.publish(live)).status, 202);
        const leaked = await ana.client.before(
          (f) => f.type === "event" && f.envelope.metadata.type === "REALTIME",
          (f) => f.type === "event",
        );
        assert.deepEqual(leaked, [], `no notification reaches ana under ${idOf(scope)}`);

        await clearSwitch(server, scope);
        assert.equal((await nextControl(ana.client)).features.notifications, true);
        assert.equal((await inbox(server, ANA)).status, 200);
        const after = notification([ANA.id]);
        assert.equal((await server.publish(after)).status, 202);
        assert.equal(
          (await ana.client.next((f) => f.type === "event")).envelope.metadata.id,
          (after.metadata as { id: string }).id,
        );
        await Promise.all([ana, ben].map((c) => c.client.close()));
      }
    });
  },
});

Deno.test({
  ...opts,
  name: "the messaging switch answers feature_disabled to its scope only, over WS and HTTP",
  async fn() {
    await withServer(async (server, clients) => {
      for (const scope of SCOPES) {
        const everyone = scope.type === "SYSTEM";
        const ana = await open(server, ANA, clients);
        const ben = await open(server, BEN, clients);

        await setSwitch(server, scope, ["messaging"], "Chat paused");
        assert.equal((await nextControl(ana.client)).features.messaging, false);
        const send = { type: "msg.send", conversation: "c-1", text: "hi", client_id: "x1" };
        ana.client.send({ ...send, ref: "a1" });
        const err = await ana.client.next((f) => f.type === "error" && f.ref === "a1");
        assert.equal(err.code, "feature_disabled", idOf(scope));
        assert.match(err.message, /Chat paused/);
        const http = await server.request("/v1/me/conversations", {
          bearer: await tokenOf(server, ANA),
        });
        assert.equal(http.status, 403);
        assert.equal((http.body.error as { code: string }).code, "feature_disabled");

        ben.client.send({ ...send, ref: "b1" });
        const benAnswer = await ben.client.next((f) => f.type === "error" && f.ref === "b1")
          .catch(() => undefined);
        const benHttp = await server.request("/v1/me/conversations", {
          bearer: await tokenOf(server, BEN),
        });
        if (everyone) {
          assert.equal(benAnswer?.code, "feature_disabled");
          assert.equal(benHttp.status, 403);
        } else {
          assert.notEqual(benAnswer?.code, "feature_disabled", `ben under ${idOf(scope)}`);
          assert.notEqual(benHttp.status, 403);
        }
        // Notifications still reach ana.
        const note = notification([ANA.id]);
        assert.equal((await server.publish(note)).status, 202);
        assert.equal(
          (await ana.client.next((f) => f.type === "event")).envelope.metadata.type,
          "NOTIFICATION",
        );

        await clearSwitch(server, scope);
        assert.equal((await nextControl(ana.client)).features.messaging, true);
        ana.client.send({ ...send, ref: "a2" });
        const answer = await ana.client.next((f) => f.type === "error" && f.ref === "a2")
          .catch(() => undefined);
        assert.notEqual(answer?.code, "feature_disabled");
        await Promise.all([ana, ben].map((c) => c.client.close()));
      }
    });
  },
});

Deno.test({
  ...opts,
  name: "the email switch turns mail off for its scope only and tells the clients",
  async fn() {
    await withServer(async (server, clients) => {
      for (const scope of SCOPES) {
        const everyone = scope.type === "SYSTEM";
        const ana = await open(server, ANA, clients);
        const ben = await open(server, BEN, clients);

        await setSwitch(server, scope, ["email"], "SMTP relay blacklisted");
        const control = await nextControl(ana.client);
        assert.equal(control.features.email, false, idOf(scope));
        assert.equal(control.features.notifications, true);
        const guard = server.relais.guard;
        assert.equal(guard.emailEnabled(guard.subjectOf(ANA.id)), false);
        assert.equal(guard.emailEnabled(guard.subjectOf(BEN.id)), !everyone);
        if (!everyone) {
          assert.deepEqual(await ben.client.settled((f) => f.type === "control"), []);
        }
        // In-app delivery is another feature: still on.
        const note = notification([ANA.id]);
        assert.equal((await server.publish(note)).status, 202);
        assert.ok(await ana.client.next((f) => f.type === "event"));

        await clearSwitch(server, scope);
        assert.equal((await nextControl(ana.client)).features.email, true);
        assert.equal(guard.emailEnabled(guard.subjectOf(ANA.id)), true);
        await Promise.all([ana, ben].map((c) => c.client.close()));
      }
    });
  },
});

Deno.test({
  ...opts,
  name: "a switch with until turns itself off and the clients are told",
  async fn() {
    await withServer(async (server, clients) => {
      const ana = await open(server, ANA, clients);
      const until = new Date(Date.now() + 1500).toISOString();
      await setSwitch(server, { type: "USER", id: "ana" }, ["messaging"], "Cooling off", until);
      const off = await nextControl(ana.client);
      assert.deepEqual(off.disabled, [{ feature: "messaging", reason: "Cooling off", until }]);
      const on = await nextControl(ana.client, 6000);
      assert.equal(on.features.messaging, true);
      const list = await server.request("/v1/admin/controls/user:ana", {
        apiKey: "test_service_key_0123456789abcdef",
      });
      assert.equal(list.body.active, false);
      ana.client.send({
        type: "msg.send",
        conversation: "c",
        text: "back",
        client_id: "k",
        ref: "r",
      });
      const answer = await ana.client.next((f) => f.type === "error" && f.ref === "r")
        .catch(() => undefined);
      assert.notEqual(answer?.code, "feature_disabled");
    });
  },
});

Deno.test({
  ...opts,
  name: "a realtime switch with until lets the user connect again once it has passed",
  async fn() {
    await withServer(async (server, clients) => {
      const until = new Date(Date.now() + 1000).toISOString();
      await setSwitch(server, { type: "CATEGORY", id: "STUDENT" }, ["realtime"], "Brief", until);
      assert.equal((await open(server, ANA, clients)).closed?.code, 4003);
      await eventually(
        async () => {
          const res = await server.request("/v1/admin/controls/category:STUDENT", {
            apiKey: SERVICE_KEY,
          });
          return res.body.active === false;
        },
        5000,
        "the switch to pass",
      );
      assert.ok((await open(server, ANA, clients)).welcome);
    });
  },
});

Deno.test({
  ...opts,
  name: "an email switch keeps mail from the users of its scope while the others get theirs",
  async fn() {
    const outbox = await Deno.makeTempDir({ prefix: "relais-controls-outbox-" });
    const server = await startServer({ RELAIS_OUTBOX_DIR: outbox });
    try {
      await addUsers(server);
      await setSwitch(server, { type: "STRUCTURE", id: "univ-a" }, ["email"], "Bounces");
      const mailed = (n: number) =>
        envelope([ANA.id, BEN.id], {
          metadata: { priority: "HIGH", topic: `mailed.${n}` },
          routing: { channels: ["inapp", "email"] },
        });
      assert.equal((await server.publish(mailed(1))).status, 202);
      const recipients = async () => {
        const out: string[] = [];
        for (const f of Deno.readDirSync(outbox)) {
          if (!f.name.endsWith(".eml")) continue;
          const text = await Deno.readTextFile(`${outbox}/${f.name}`);
          out.push(/^To: (.*)$/m.exec(text)?.[1] ?? "?");
        }
        return out;
      };
      await eventually(async () => (await recipients()).length > 0, 10_000, "a first mail");
      // Barrier: once the queue is empty, ana's mail can no longer be written.
      await mailQueueDrained(server.origin);
      const first = await recipients();
      assert.equal(first.length, 1, JSON.stringify(first));
      assert.match(first[0], /ben@example\.org/);
      // The notification itself is in ana's inbox: only the mail was switched off.
      const inbox = await server.request("/v1/me/notifications", {
        bearer: await tokenOf(server, ANA),
      });
      assert.equal((inbox.body.items as unknown[]).length, 1);

      await clearSwitch(server, { type: "STRUCTURE", id: "univ-a" });
      assert.equal((await server.publish(mailed(2))).status, 202);
      await eventually(async () => (await recipients()).length >= 3, 10_000, "three mails");
      assert.equal((await recipients()).filter((to) => /ana@example\.org/.test(to)).length, 1);
    } finally {
      await server.close();
      await Deno.remove(outbox, { recursive: true });
    }
  },
});

Deno.test({
  ...opts,
  name: "the realtime switch also ends SSE streams of its scope with 4003 and lets others stream",
  async fn() {
    await withServer(async (server) => {
      const sse = async (user: typeof ANA) =>
        await openSse(`${server.origin}/v1/sse`, {
          authorization: `Bearer ${await tokenOf(server, user)}`,
        });
      const ana = await sse(ANA);
      const ben = await sse(BEN);
      try {
        assert.equal((await ana.next((e) => e.frame.type === "welcome")).frame.type, "welcome");
        await ben.next((e) => e.frame.type === "welcome");
        await setSwitch(server, { type: "USER", id: "ana" }, ["realtime"], "Stream paused");
        const closed = await ana.next((e) => e.frame.type === "close");
        assert.equal(closed.frame.code, 4003);
        assert.match(closed.frame.reason, /Stream paused/);
        // A new stream of hers ends at once; ben's keeps receiving.
        const again = await sse(ANA);
        assert.equal((await again.next((e) => e.frame.type === "close")).frame.code, 4003);
        await again.close();
        const sent = realtime([BEN.id]);
        assert.equal((await server.publish(sent)).status, 202);
        const got = await ben.next((e) => e.frame.type === "event");
        assert.equal(got.frame.envelope.metadata.id, (sent.metadata as { id: string }).id);
      } finally {
        await ana.close();
        await ben.close();
      }
    });
  },
});

Deno.test({
  ...opts,
  name: "a client connecting while a feature is off gets a control frame on WS and SSE",
  async fn() {
    await withServer(async (server, clients) => {
      await setSwitch(server, { type: "ROLE", id: "ROLE_STUDENT" }, ["messaging"], "Exams");
      const ws = await open(server, ANA, clients);
      const control = await nextControl(ws.client);
      assert.deepEqual(control.disabled, [{ feature: "messaging", reason: "Exams" }]);
      assert.deepEqual(await ws.client.settled((f) => f.type === "control"), []);
      const sse = await openSse(`${server.origin}/v1/sse`, {
        authorization: `Bearer ${await tokenOf(server, ANA)}`,
      });
      try {
        const frame = (await sse.next((e) => e.frame.type === "control")).frame;
        assert.equal(frame.features.messaging, false);
      } finally {
        await sse.close();
      }
      const ben = await open(server, BEN, clients);
      assert.deepEqual(await ben.client.settled((f) => f.type === "control"), []);
    });
  },
});

Deno.test({
  ...opts,
  name:
    "a user who joins a switched structure while connected is held to the switch on the open socket",
  async fn() {
    await withServer(async (server, clients) => {
      const ben = await open(server, BEN, clients);
      assert.ok(ben.welcome);
      await setSwitch(server, { type: "STRUCTURE", id: "univ-a" }, ["realtime"], "Maintenance");
      // Not in univ-a: ben's socket stays open.
      assert.equal((await server.request("/healthz")).status, 200);
      assert.ok(isOpen(ben.client), "ben stays connected while outside univ-a");

      // The directory moves ben into univ-a: the switch reaches his open socket.
      await addUsers(server, [{ ...BEN, structures: ["univ-b", "univ-a"] }]);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const closed = await Promise.race([
        ben.client.closed,
        new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), 3_000)),
      ]).finally(() => clearTimeout(timer));
      assert.equal(closed?.code, 4003, "ben's open socket is closed once he joined univ-a");
      assert.match(closed.reason, /Maintenance/);
    });
  },
});
