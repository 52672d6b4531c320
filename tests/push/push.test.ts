/**
 * Web Push end to end: a real relais on loopback sends NOTIFICATIONs to a local push
 * service that checks the VAPID signature and decrypts each message with the
 * subscription's own keys, as a browser's push service and the browser would.
 */

import assert from "node:assert/strict";
import { loadConfig } from "../../src/config.ts";
import { endpointRefusal } from "../../src/push/subscription.ts";
import { envelope, eventually, SERVICE_KEY, startServer, testEnv } from "../_support/server.ts";
import type { TestServer } from "../_support/server.ts";
import { b64u, fromB64u, startPushService, type Subscriber } from "./_push_service.ts";

async function subscribe(server: TestServer, user: string, subscriber: Subscriber) {
  const res = await server.request("/v1/me/push-subscriptions", {
    bearer: await server.token(user),
    body: subscriber.json,
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
}

async function exportOf(server: TestServer, user: string) {
  const res = await server.request(`/v1/users/${user}/export`, { apiKey: SERVICE_KEY });
  assert.equal(res.status, 200);
  return res.body as Record<string, unknown> & {
    push_subscriptions: { endpoint: string }[];
    push_tasks: { attempts: number }[];
  };
}

/** `HH:MM` in UTC, `minutes` from now. */
const utcTime = (minutes: number) =>
  new Date(Date.now() + minutes * 60_000).toISOString().slice(11, 16);

Deno.test("a user without a live connection gets the notification as an encrypted, VAPID-signed push", async () => {
  const push = startPushService();
  const server = await startServer();
  try {
    const lea = await push.subscriber("lea");
    await subscribe(server, "lea", lea);
    const sent = envelope(["lea"], {
      metadata: { collapse_key: "feedback-42" },
      payload: {
        fr: {
          title: "Nouvelle demande",
          body: "Camille attend votre retour",
          url: "https://portfolio.test/f/42",
        },
        en: { title: "New request", body: "Camille awaits your feedback" },
      },
    });
    assert.equal((await server.publish(sent)).status, 202);

    const [received] = await push.waitFor(lea, 1);
    const meta = sent.metadata as { id: string };
    assert.equal(received.payload.id, meta.id);
    assert.equal(received.payload.title, "Nouvelle demande");
    assert.equal(received.payload.body, "Camille attend votre retour");
    assert.equal(received.payload.url, "https://portfolio.test/f/42");
    assert.equal(received.payload.tag, "feedback-42");
    assert.equal(received.claims.aud, push.origin);
    // Signed with the key browsers subscribe with.
    const key = await server.request("/v1/push/vapid-public-key");
    assert.equal(received.vapidKey, key.body.public_key);
    assert.equal(received.headers.get("urgency"), "normal");
    assert.match(received.headers.get("topic") ?? "", /^[\w-]{32}$/);
    assert.ok(Number(received.headers.get("ttl")) > 0);
    // Sent: the task left the queue.
    await eventually(async () => (await exportOf(server, "lea")).push_tasks.length === 0);
    assert.deepEqual(push.rejected, []);
  } finally {
    await server.close();
    await push.close();
  }
});

Deno.test("a connected user gets no push while an offline target of the same event does", async () => {
  const push = startPushService();
  const server = await startServer();
  try {
    const alice = await push.subscriber("alice");
    const bob = await push.subscriber("bob");
    await subscribe(server, "alice", alice);
    await subscribe(server, "bob", bob);
    const { client } = await server.login("alice");
    assert.equal((await server.publish(envelope(["alice", "bob"]))).status, 202);
    await client.next((f) => f.type === "event");
    // Barrier: the pushes of one event are queued together and sent in user order, so
    // alice's would reach the push service before bob's.
    await push.waitFor(bob, 1);
    assert.equal(alice.received.length, 0);
    assert.deepEqual(push.rejected, []);
  } finally {
    await server.close();
    await push.close();
  }
});

Deno.test("preferences, quiet hours and the push kill switch stop a push; the push channel lets it through", async () => {
  const push = startPushService();
  const server = await startServer();
  try {
    const users = ["a-muted", "b-quiet", "c-switched", "d-disabled", "e-push-on", "z-barrier"];
    const subscribers = new Map<string, Subscriber>();
    for (const user of users) {
      const subscriber = await push.subscriber(user);
      subscribers.set(user, subscriber);
      await subscribe(server, user, subscriber);
    }
    const prefs = async (user: string, body: unknown) => {
      const res = await server.request("/v1/me/preferences", {
        method: "PUT",
        bearer: await server.token(user),
        body,
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    await prefs("a-muted", { sources: { feedback: { channels: ["inapp", "email"] } } });
    await prefs("b-quiet", {
      timezone: "UTC",
      quiet_hours: { start: utcTime(-60), end: utcTime(60) },
    });
    await prefs("d-disabled", { enabled: false });
    await prefs("e-push-on", { sources: { feedback: { channels: ["inapp", "push"] } } });
    const control = await server.request("/v1/admin/controls", {
      method: "PUT",
      apiKey: SERVICE_KEY,
      body: { scope: { type: "USER", id: "c-switched" }, features: ["push"], reason: "Tests" },
    });
    assert.ok(control.status === 200 || control.status === 201, JSON.stringify(control.body));

    assert.equal((await server.publish(envelope(users))).status, 202);
    // Barrier: z-barrier's push is the last of the event's pushes.
    await push.waitFor(subscribers.get("z-barrier")!, 1);
    assert.equal(subscribers.get("e-push-on")!.received.length, 1);
    for (const user of ["a-muted", "b-quiet", "c-switched", "d-disabled"]) {
      assert.equal(subscribers.get(user)!.received.length, 0, user);
    }
    // Quiet hours only delay it: the task waits in the queue until they end.
    const quiet = await exportOf(server, "b-quiet");
    assert.equal(quiet.push_tasks.length, 1);
    assert.equal((await exportOf(server, "a-muted")).push_tasks.length, 0);
    assert.deepEqual(push.rejected, []);
  } finally {
    await server.close();
    await push.close();
  }
});

Deno.test("a subscription the push service answers 410 for is removed", async () => {
  const push = startPushService();
  const server = await startServer();
  try {
    const gone = await push.subscriber("gone", 410);
    await subscribe(server, "noe", gone);
    assert.equal((await exportOf(server, "noe")).push_subscriptions.length, 1);
    assert.equal((await server.publish(envelope(["noe"]))).status, 202);
    await push.waitFor(gone, 1);
    await eventually(
      async () => {
        const doc = await exportOf(server, "noe");
        return doc.push_subscriptions.length === 0 && doc.push_tasks.length === 0;
      },
      3000,
      "the subscription to be removed",
    );
  } finally {
    await server.close();
    await push.close();
  }
});

Deno.test("a push answered 500 is retried with backoff and kept in the durable queue across a restart", async () => {
  const push = startPushService();
  const dir = await Deno.makeTempDir({ prefix: "relais-push-" });
  const env = { RELAIS_KV_PATH: `${dir}/relais.kv`, RELAIS_PUSH_RETRY_BASE_MS: "300" };
  let server = await startServer(env);
  try {
    const max = await push.subscriber("max", 500);
    await subscribe(server, "max", max);
    const sent = envelope(["max"]);
    assert.equal((await server.publish(sent)).status, 202);
    const [first, second] = await push.waitFor(max, 2);
    // Measures time: the first retry waits the base delay (less a few ms: timers may fire
    // slightly early against the wall clock the two receipts are stamped with).
    assert.ok(second.at - first.at >= 280, `retried after ${second.at - first.at} ms`);
    await eventually(async () => (await exportOf(server, "max")).push_tasks[0]?.attempts === 2);
    await server.close();

    // The push service is back; the restarted relais sends what was queued.
    max.status = 201;
    const before = max.received.length;
    server = await startServer(env);
    const received = await push.waitFor(max, before + 1);
    const last = received[received.length - 1];
    assert.equal(last.payload.id, (sent.metadata as { id: string }).id);
    assert.equal(last.status, 201);
    // The VAPID keys generated in development are kept with the data.
    assert.equal(last.vapidKey, first.vapidKey);
    await eventually(async () => (await exportOf(server, "max")).push_tasks.length === 0);
    assert.deepEqual(push.rejected, []);
  } finally {
    await server.close();
    await push.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a subscription to a host that is not a push service is refused with 400 naming endpoint", async () => {
  const server = await startServer();
  try {
    const token = await server.token("lea");
    const keys = {
      p256dh:
        "BHUOq1ZMfK65VwNJ4vc9Es8xFTxHE5a72zZGnQzWq9T86-FrCsAIdguqFksVJkpHN87XdyW85ECyJj2GkJuaAqU",
      auth: "5I2Bu2oKdyy9CwL8QVF0NQ",
    };
    for (
      const endpoint of [
        "https://evil.example.com/push/1",
        "http://fcm.googleapis.com/fcm/send/x",
        "http://localhost:9/push",
        "http://10.0.0.1/push",
        "https://user:pw@fcm.googleapis.com/fcm/send/x",
        "not a url",
        `https://fcm.googleapis.com/${"x".repeat(3000)}`,
      ]
    ) {
      const res = await server.request("/v1/me/push-subscriptions", {
        bearer: token,
        body: { endpoint, keys },
      });
      assert.equal(res.status, 400, endpoint);
      const error = res.body.error as { code: string; details: { path: string }[] };
      assert.equal(error.code, "validation_failed");
      assert.equal(error.details[0].path, "endpoint", endpoint);
    }
    const badKey = await server.request("/v1/me/push-subscriptions", {
      bearer: token,
      body: {
        endpoint: "https://fcm.googleapis.com/fcm/send/abc",
        keys: { ...keys, auth: "AAAA" },
      },
    });
    assert.equal(badKey.status, 400);
    // A push service's endpoint is accepted, and can be removed again.
    const ok = await server.request("/v1/me/push-subscriptions", {
      bearer: token,
      body: { endpoint: "https://fcm.googleapis.com/fcm/send/abc", keys },
    });
    assert.equal(ok.status, 201);
    const removed = await server.request("/v1/me/push-subscriptions", {
      method: "DELETE",
      bearer: token,
      body: { endpoint: "https://fcm.googleapis.com/fcm/send/abc" },
    });
    assert.deepEqual(removed.body, { removed: true });
    const anonymous = await server.request("/v1/me/push-subscriptions", {
      body: { endpoint: "https://fcm.googleapis.com/fcm/send/abc", keys },
    });
    assert.equal(anonymous.status, 401);
  } finally {
    await server.close();
  }
});

Deno.test("endpoints: https on the listed push services; loopback http only in development", () => {
  const hosts = ["fcm.googleapis.com", "*.notify.windows.com"];
  const prod = { hosts, allowLoopback: false };
  assert.equal(endpointRefusal("https://fcm.googleapis.com/fcm/send/x", prod), undefined);
  assert.equal(endpointRefusal("https://wns2-par02p.notify.windows.com/w/?t=1", prod), undefined);
  assert.ok(endpointRefusal("https://notify.windows.com.evil.test/x", prod));
  assert.ok(endpointRefusal("https://evilfcm.googleapis.com.test/x", prod));
  assert.ok(endpointRefusal("http://127.0.0.1:9/push", prod));
  assert.equal(
    endpointRefusal("http://127.0.0.1:9/push", { hosts, allowLoopback: true }),
    undefined,
  );
});

Deno.test("Web Push is off in production without VAPID keys, and a half pair is refused", () => {
  const production = {
    RELAIS_ENV: "production",
    RELAIS_KV_PATH: ":memory:",
    RELAIS_JWT_SECRET: "x".repeat(40),
    RELAIS_SERVICE_KEYS: "a:0123456789abcdef0123:admin",
  };
  assert.equal(loadConfig(production).push.enabled, false);
  assert.equal(loadConfig(testEnv()).push.enabled, true);
  assert.throws(
    () => loadConfig({ ...production, RELAIS_VAPID_PUBLIC_KEY: "B".repeat(87) }),
    /RELAIS_VAPID_PRIVATE_KEY/,
  );
  assert.throws(
    () => loadConfig({ ...production, RELAIS_PUSH_ENDPOINT_HOSTS: "https://x.test" }),
    /Invalid RELAIS_PUSH_ENDPOINT_HOSTS/,
  );
  const on = loadConfig({
    ...production,
    RELAIS_VAPID_PUBLIC_KEY: "B".repeat(87),
    RELAIS_VAPID_PRIVATE_KEY: "a".repeat(43),
    RELAIS_MAIL_FROM: "relais <ops@univ.test>",
  });
  assert.equal(on.push.enabled, true);
  assert.equal(on.push.subject, "mailto:ops@univ.test");
  assert.deepEqual(on.push.endpoints.allowLoopback, false);
});

Deno.test("a subscription whose p256dh is no P-256 public key is refused with 400 naming keys.p256dh", async () => {
  const server = await startServer();
  try {
    const token = await server.token("lea");
    const endpoint = "https://fcm.googleapis.com/fcm/send/abc";
    const valid =
      "BHUOq1ZMfK65VwNJ4vc9Es8xFTxHE5a72zZGnQzWq9T86-FrCsAIdguqFksVJkpHN87XdyW85ECyJj2GkJuaAqU";
    const point = fromB64u(valid);
    const offCurve = point.slice();
    offCurve[64] ^= 1;
    const compressedTag = point.slice();
    compressedTag[0] = 0x02;
    for (
      const p256dh of [
        // 65 bytes each, as a key must be, yet none is a point a browser could have made.
        b64u(new Uint8Array(65)),
        b64u(offCurve),
        b64u(compressedTag),
        // x above the field's prime.
        b64u(new Uint8Array([4, ...new Uint8Array(32).fill(0xff), ...point.slice(33)])),
      ]
    ) {
      const res = await server.request("/v1/me/push-subscriptions", {
        bearer: token,
        body: { endpoint, keys: { p256dh, auth: "5I2Bu2oKdyy9CwL8QVF0NQ" } },
      });
      assert.equal(res.status, 400, p256dh);
      const error = res.body.error as { code: string; details: { path: string }[] };
      assert.equal(error.code, "validation_failed");
      assert.equal(error.details[0].path, "keys.p256dh", JSON.stringify(error));
    }
    const ok = await server.request("/v1/me/push-subscriptions", {
      bearer: token,
      body: { endpoint, keys: { p256dh: valid, auth: "5I2Bu2oKdyy9CwL8QVF0NQ" } },
    });
    assert.equal(ok.status, 201);
    assert.equal((await exportOf(server, "lea")).push_subscriptions.length, 1);
  } finally {
    await server.close();
  }
});

Deno.test("with Web Push off, registering or forgetting a subscription answers 503, not a validation error", async () => {
  const server = await startServer({ RELAIS_ENV: "production" });
  try {
    const token = await server.token("lea");
    const endpoint = "https://fcm.googleapis.com/fcm/send/abc";
    const keys = {
      p256dh:
        "BHUOq1ZMfK65VwNJ4vc9Es8xFTxHE5a72zZGnQzWq9T86-FrCsAIdguqFksVJkpHN87XdyW85ECyJj2GkJuaAqU",
      auth: "5I2Bu2oKdyy9CwL8QVF0NQ",
    };
    for (
      const [method, body] of [["POST", { endpoint, keys }], ["DELETE", { endpoint }]] as const
    ) {
      const res = await server.request("/v1/me/push-subscriptions", {
        method,
        bearer: token,
        body,
      });
      assert.equal(res.status, 503, `${method} ${JSON.stringify(res.body)}`);
      assert.equal((res.body.error as { code: string }).code, "unavailable");
    }
    assert.equal((await server.request("/v1/push/vapid-public-key")).status, 503);
    // The credential is still checked first.
    const anonymous = await server.request("/v1/me/push-subscriptions", {
      body: { endpoint, keys },
    });
    assert.equal(anonymous.status, 401);
  } finally {
    await server.close();
  }
});

Deno.test("a notification too long for one push is shortened to fit, its title and link kept", async () => {
  const push = startPushService();
  const server = await startServer();
  try {
    const lea = await push.subscriber("lea");
    await subscribe(server, "lea", lea);
    // 3 bytes a character: with the title and the link, over a push's 3993 bytes of text.
    const title = "課題の提出期限".repeat(20);
    const body = "評価コメント：よくできました。".repeat(100);
    const url = `https://portfolio.test/f/42?${"q=é&".repeat(100)}`;
    const sent = envelope(["lea"], {
      metadata: { collapse_key: "feedback-42" },
      payload: { fr: { title, body, url }, en: { title, body, url } },
    });
    assert.equal((await server.publish(sent)).status, 202);
    const [received] = await push.waitFor(lea, 1);
    assert.equal(received.payload.title, title);
    assert.equal(received.payload.url, new URL(url).href);
    assert.equal(received.payload.tag, "feedback-42");
    const shortened = received.payload.body as string;
    assert.ok(shortened.length > 100, `${shortened.length} characters left`);
    assert.ok(shortened.endsWith("…"), shortened.slice(-10));
    assert.ok(body.startsWith(shortened.slice(0, -1)));
    // A link that alone leaves no room for the text goes rather than the text.
    const huge = `https://portfolio.test/${"é".repeat(1900)}`;
    const second = envelope(["lea"], {
      payload: { fr: { title: "Nouvelle demande", body: "Camille attend", url: huge } },
    });
    assert.equal((await server.publish(second)).status, 202);
    const [, next] = await push.waitFor(lea, 2);
    assert.equal(next.payload.title, "Nouvelle demande");
    assert.equal(next.payload.body, "Camille attend");
    assert.equal(next.payload.url, undefined);
    assert.deepEqual(push.rejected, []);
  } finally {
    await server.close();
    await push.close();
  }
});

Deno.test("a user whose socket closed gets the push of a large audience's notification sent ahead of its writes", async () => {
  const push = startPushService();
  const server = await startServer();
  try {
    // Last in the fan-out's order, with a stream head still open (her actor lingers) and no
    // socket: the item goes to her head before the job writes it, and the push must wait
    // for that write (a push reads the stored item).
    const lea = await push.subscriber("lea");
    await subscribe(server, "zz-lea", lea);
    const { client } = await server.login("zz-lea");
    await client.close();
    const others = Array.from({ length: 1500 }, (_, i) => `member-${String(i).padStart(4, "0")}`);
    const sent = envelope([...others, "zz-lea"]);
    assert.equal((await server.publish(sent)).status, 202);
    const [received] = await push.waitFor(lea, 1);
    assert.equal(received.payload.id, (sent.metadata as { id: string }).id);
    await eventually(async () => (await exportOf(server, "zz-lea")).push_tasks.length === 0);
    assert.equal(lea.received.length, 1);
    assert.deepEqual(push.rejected, []);
  } finally {
    await server.close();
    await push.close();
  }
});
