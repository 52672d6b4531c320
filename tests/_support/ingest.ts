/** The platform's change-data fixture and the rule the ingest tests read it with. */

const fixture = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/debezium-change-event.json", import.meta.url)),
);

/** One Debezium change of `public.activity` (an `update`), as the platform's worker writes it. */
export const CHANGE = fixture.value;

/** A REALTIME rule for `public.activity`: to the activity's program, three columns. */
export const ACTIVITY_RULE = {
  table: "public.activity",
  source: "activities",
  topic: "activity.changed",
  key: ["id"],
  audience: { type: "FORMATION", column: "program_id" },
  columns: ["id", "title", "status"],
  collapse_key: "activity:{id}",
};
