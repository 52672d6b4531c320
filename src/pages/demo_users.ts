/** The demo users the development demo offers (tokens from `GET /demo/token`). */
export const DEMO_USERS = ["camille", "yanis", "emma", "lucas"] as const;

/** A demo user id. */
export type DemoUser = (typeof DEMO_USERS)[number];
