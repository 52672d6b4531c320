/** The user's notification preferences: `GET|PUT /v1/me/preferences`. */

import { Hono } from "hono";
import { requireUser, type RequireUserDeps } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import { DEFAULT_PREFERENCES, PreferencesSchema } from "../src/preferences/preferences.ts";
import type { PreferencesStore } from "../src/preferences/preferences_store.ts";
import { describe } from "../src/openapi.ts";
import { jsonBody } from "./_json_body.ts";

/** Dependencies of {@linkcode createPreferencesRoutes}. */
export interface PreferencesRoutesDeps extends RequireUserDeps {
  preferences: PreferencesStore;
  maxBodyBytes: number;
}

/** `/v1/me/preferences`: read and replace the caller's preferences. */
export function createPreferencesRoutes(deps: PreferencesRoutesDeps) {
  return new Hono<AppEnv>()
    .use("/v1/me/preferences", requireUser(deps))
    .get(
      "/v1/me/preferences",
      describe({
        summary: "The user's notification preferences (defaults when never set)",
        tags: ["preferences"],
        security: "user",
        responses: { 200: { description: "Preferences" } },
      }),
      async (c) => {
        const prefs = await deps.preferences.get(c.get("user").id);
        return c.json(prefs ?? DEFAULT_PREFERENCES);
      },
    )
    .put(
      "/v1/me/preferences",
      describe({
        summary: "Replace the user's notification preferences",
        description:
          "Per source: channels (inapp, email, push or none) and digest (off, hourly, daily); quiet hours in the user's time zone delay email and Web Push; enabled=false mutes every notification but critical ones (SYSTEM, HIGH from source platform).",
        tags: ["preferences"],
        security: "user",
        responses: { 200: { description: "Saved" } },
      }),
      jsonBody(PreferencesSchema, { maxBytes: deps.maxBodyBytes, what: "preferences" }),
      async (c) => {
        const prefs = c.req.valid("json");
        await deps.preferences.put(c.get("user").id, prefs);
        return c.json(prefs);
      },
    );
}
