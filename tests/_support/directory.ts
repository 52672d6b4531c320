/** The fixture directory of the platform, loaded from `tests/fixtures/directory.json`. */

import type { DirectoryEntry } from "../../src/directory/directory.ts";
import {
  type Directory,
  DirectoryEntryInputSchema,
  toEntry,
} from "../../src/directory/directory.ts";
import * as v from "valibot";

/** Fixture JSON, loosely typed so that tests can reach into and patch it. */
// deno-lint-ignore no-explicit-any
export type LooseJson = Record<string, any>;

/** A fixture user, as the backend would `PUT` it. */
export type FixtureUser = Record<string, unknown> & { id: string; email: string; locale: string };

/** The fixture users. */
export async function fixtureUsers(): Promise<FixtureUser[]> {
  const text = await Deno.readTextFile(new URL("../fixtures/directory.json", import.meta.url));
  return (JSON.parse(text) as { users: FixtureUser[] }).users;
}

/** The fixture events, by name. */
export async function fixtureEvents(): Promise<Record<string, Record<string, unknown>>> {
  const text = await Deno.readTextFile(new URL("../fixtures/events.json", import.meta.url));
  return JSON.parse(text);
}

/** A student's directory entry, in `structures` (one Lyon university by default). */
export const studentEntry = (id: string, structures: string[] = ["univ-lyon"]): DirectoryEntry => ({
  id,
  email: `${id}@univ.test`,
  name: id,
  locale: "fr",
  category: "STUDENT",
  roles: ["ROLE_STUDENT"],
  structures,
  formations: [],
  groups: [],
  updated_at: "2026-03-05T12:00:00.000Z",
});

/** Writes every fixture user into a directory. */
export async function loadFixtureDirectory(directory: Directory): Promise<DirectoryEntry[]> {
  const entries = (await fixtureUsers()).map((u) =>
    toEntry(u.id, v.parse(DirectoryEntryInputSchema, u), Date.now())
  );
  for (const entry of entries) await directory.put(entry);
  return entries;
}

/** Short names of the fixture users, by id suffix. */
export const FIXTURE = {
  camille: "7b1d0c3e-2f4a-4c55-9a61-0d6f1f3b2a01",
  yanis: "7b1d0c3e-2f4a-4c55-9a61-0d6f1f3b2a02",
  emma: "7b1d0c3e-2f4a-4c55-9a61-0d6f1f3b2a03",
  helene: "7b1d0c3e-2f4a-4c55-9a61-0d6f1f3b2a10",
  admin: "7b1d0c3e-2f4a-4c55-9a61-0d6f1f3b2a20",
  lucas: "7b1d0c3e-2f4a-4c55-9a61-0d6f1f3b2a30",
} as const;

/**
 * A fixture event ready to publish now: a fresh id, the current timestamp and an
 * expiration a day ahead (the fixtures' own dates are in the past).
 */
export async function freshFixture(
  name: string,
  patch: (e: LooseJson) => void = () => {},
): Promise<LooseJson> {
  const e = structuredClone((await fixtureEvents())[name]) as LooseJson;
  e.metadata.id = crypto.randomUUID();
  e.metadata.timestamp = new Date().toISOString();
  if (e.metadata.expiration) {
    e.metadata.expiration = new Date(Date.now() + 86_400_000).toISOString();
  }
  patch(e);
  return e;
}

/** `PUT`s every fixture user through the API; returns the statuses. */
export async function putFixtureUsers(
  request: (
    path: string,
    init: { method: string; apiKey: string; body: unknown },
  ) => Promise<{ status: number }>,
  apiKey: string,
): Promise<number[]> {
  const statuses: number[] = [];
  for (const user of await fixtureUsers()) {
    statuses.push(
      (await request(`/v1/users/${user.id}`, { method: "PUT", apiKey, body: user })).status,
    );
  }
  return statuses;
}

/** Item frames (`event`, `update`) received, with those inside `batch` frames flattened. */
export function itemFrames(frames: LooseJson[]): LooseJson[] {
  return frames.flatMap((f) =>
    f.type === "batch" ? f.items : f.type === "event" || f.type === "update" ? [f] : []
  );
}
