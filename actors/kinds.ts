/** The kinds of actor, as the registry, the admin API, the metrics and the ops page name them. */
export const ACTOR_KINDS = ["user", "conversation", "mailer", "retention", "push"] as const;

/** A kind from {@linkcode ACTOR_KINDS}. */
export type ActorKind = (typeof ACTOR_KINDS)[number];
