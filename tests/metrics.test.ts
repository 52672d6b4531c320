import assert from "node:assert/strict";
import { Hono } from "hono";
import { createMetrics, httpMetrics } from "../src/metrics.ts";

const NAMES = [
  "relais_connections",
  "relais_events_accepted_total",
  "relais_deliveries_total",
  "relais_acks_total",
  "relais_redeliveries_total",
  "relais_dead_letters_total",
  "relais_actors",
  "relais_actor_failures_total",
  "relais_publish_to_deliver_seconds",
  "relais_http_requests_total",
];

Deno.test("metrics render every relais metric and the values counted", async () => {
  const metrics = createMetrics();
  metrics.connections.inc({ transport: "ws" });
  metrics.connections.inc({ transport: "ws" });
  metrics.eventsAccepted.inc({ type: "NOTIFICATION" }, 3);
  metrics.deliveries.inc();
  metrics.acks.inc(2);
  metrics.redeliveries.inc();
  metrics.deadLetters.inc();
  metrics.latency.observe(0.003);

  const text = await metrics.render();

  for (const name of NAMES) assert(text.includes(`# TYPE ${name} `), `missing ${name}`);
  assert.match(text, /^relais_connections\{transport="ws"\} 2$/m);
  assert.match(text, /^relais_events_accepted_total\{type="NOTIFICATION"\} 3$/m);
  assert.match(text, /^relais_deliveries_total 1$/m);
  assert.match(text, /^relais_acks_total 2$/m);
  assert.match(text, /^relais_dead_letters_total 1$/m);
  assert.match(text, /^relais_publish_to_deliver_seconds_bucket\{le="0.0005"\} 0$/m);
  assert.match(text, /^relais_publish_to_deliver_seconds_bucket\{le="0.005"\} 1$/m);
  assert.match(text, /^relais_publish_to_deliver_seconds_count 1$/m);
  assert.match(metrics.contentType, /^text\/plain; version=0\.0\.4/);
});

Deno.test("metrics include process metrics, with a resident memory reading that is not zero", async () => {
  const text = await createMetrics().render();

  assert.match(text, /^process_cpu_seconds_total /m);
  const rss = Number(/^process_resident_memory_bytes (\S+)$/m.exec(text)?.[1]);
  assert(rss > 0, `rss = ${rss}`);
  assert(!/^process_open_fds /m.test(text));
});

Deno.test("each metrics instance has its own registry", async () => {
  const a = createMetrics({ defaultMetrics: false });
  const b = createMetrics({ defaultMetrics: false });
  a.deliveries.inc(5);

  assert.match(await b.render(), /^relais_deliveries_total 0$/m);
  assert(!(await a.render()).includes("process_cpu"));
});

Deno.test("the actor gauge reports what the actor counter returns at each scrape", async () => {
  const metrics = createMetrics({ defaultMetrics: false });
  let users = 4;
  metrics.setActorCounter(() => ({ user: users, conversation: 2 }));

  const first = await metrics.render();
  users = 1;
  const second = await metrics.render();

  assert.match(first, /^relais_actors\{kind="user"\} 4$/m);
  assert.match(first, /^relais_actors\{kind="conversation"\} 2$/m);
  assert.match(first, /^relais_actors\{kind="mailer"\} 0$/m);
  assert.match(second, /^relais_actors\{kind="user"\} 1$/m);
});

Deno.test("actor failures are counted by kind, every kind shown from the start", async () => {
  const metrics = createMetrics({ defaultMetrics: false });
  const before = await metrics.render();
  metrics.actorFailures.inc({ kind: "conversation" });
  metrics.actorFailures.inc({ kind: "conversation" });
  const after = await metrics.render();

  assert(before.includes("# TYPE relais_actor_failures_total counter"));
  for (const kind of ["user", "conversation", "mailer"]) {
    assert.match(before, new RegExp(`^relais_actor_failures_total\\{kind="${kind}"\\} 0$`, "m"));
  }
  assert.match(after, /^relais_actor_failures_total\{kind="conversation"\} 2$/m);
  assert.match(after, /^relais_actor_failures_total\{kind="user"\} 0$/m);
});

Deno.test("a failing actor counter does not break the scrape", async () => {
  const metrics = createMetrics({ defaultMetrics: false });
  metrics.setActorCounter(() => {
    throw new Error("registry gone");
  });

  const text = await metrics.render();

  assert(text.includes("# TYPE relais_actors gauge"));
  assert(!/^relais_actors\{/m.test(text));
});

Deno.test("http metrics count responses by route pattern, not raw path", async () => {
  const metrics = createMetrics({ defaultMetrics: false });
  const app = new Hono()
    .use(httpMetrics(metrics))
    .get("/v1/events/:id", (c) => c.json({ id: c.req.param("id") }));

  await app.request("/v1/events/a");
  await app.request("/v1/events/b");
  await app.request("/nowhere/42");
  const text = await metrics.render();

  assert.match(
    text,
    /^relais_http_requests_total\{method="GET",route="\/v1\/events\/:id",status="200"\} 2$/m,
  );
  assert.match(
    text,
    /^relais_http_requests_total\{method="GET",route="unmatched",status="404"\} 1$/m,
  );
  assert.deepEqual(text.includes("/nowhere"), false);
});
