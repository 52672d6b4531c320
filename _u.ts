import { createActor } from "xstate";
const { userMachine } = await import("./actors/user.machine.ts");
const N = 5000, R = Number(Deno.args[0] ?? 30);
let sent = 0;
const m = userMachine.provide({
  actions: {
    sendItems: (_: unknown, p: { items: unknown[] }) => {
      sent += p.items.length;
    },
    announcePresence: () => {},
  },
});
const pacing = { lowWindowMs: 0, pushBudget: 1000000, budgetWindowMs: 60000 };
const actors = Array.from(
  { length: N },
  (_, i) =>
    createActor(m, {
      input: { userId: `u${i}`, pending: [], ackBaseMs: 30000, idleMs: 60000, pacing },
    }).start(),
);
for (const a of actors) a.send({ type: "conn.open", connId: "c" + Math.random() });
const times: number[] = [];
for (let r = 1; r <= R; r++) {
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    actors[i].send({
      type: "items.deliver",
      items: [{
        item: { id: "e" + r, seq: r, type: "REALTIME", durable: false } as never,
        frame: "x",
        acceptedAt: 0,
        pace: "normal",
      }],
    });
  }
  times.push((performance.now() - t0) * 1000 / N);
}
times.sort((a, b) => a - b);
console.log(
  `step median ${times[R >> 1].toFixed(2)} us, min ${times[0].toFixed(2)} us, sent ${sent}`,
);
Deno.exit(0);
