/** The user's notification preferences: `GET|PUT /v1/me/preferences`. */

import { Hono } from "hono";
import { requireUser, type RequireUserDeps } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import { readJson } from "../src/body.ts";
import { DEFAULT_PREFERENCES, PreferencesSchema } from "../src/preferences/preferences.ts";
import type { PreferencesStore } from "../src/preferences/preferences_store.ts";
import { parseOrThrow } from "../src/validate.ts";

/** Dependencies of {@linkcode createPreferencesRoutes}. */
export interface PreferencesRoutesDeps extends RequireUserDeps {
  preferences: PreferencesStore;
  maxBodyBytes: number;
}

/** `/v1/me/preferences`: read and replace the caller's preferences. */
export function createPreferencesRoutes(deps: PreferencesRoutesDeps) {
  return new Hono<AppEnv>()
    .use("/v1/me/preferences", requireUser(deps))
    .get("/v1/me/preferences", async (c) => {
      const prefs = await deps.preferences.get(c.var.user.id);
      return c.json(prefs ?? DEFAULT_PREFERENCES);
    })
    .put("/v1/me/preferences", async (c) => {
      const prefs = parseOrThrow(
        PreferencesSchema,
        await readJson(c, deps.maxBodyBytes),
        "preferences",
      );
      await deps.preferences.put(c.var.user.id, prefs);
      return c.json(prefs);
    });
}
