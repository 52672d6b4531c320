/** The KV keys of the push store, each shape written once. */

/** A user's subscription. */
export const subscriptionKey = (user: string, id: string) => ["push_sub", user, id] as const;
/** Every subscription of a user. */
export const subscriptionPrefix = (user: string) => ["push_sub", user] as const;
/** A queued task, ordered by due time. */
export const taskKey = (dueAt: number, id: string) => ["push_task", dueAt, id] as const;
/** Every queued task. */
export const taskPrefix = () => ["push_task"] as const;
/** A user's queued task → its due time, so a user's tasks are found without a scan. */
export const userTaskKey = (user: string, id: string) => ["push_task_user", user, id] as const;
/** Every queued task of a user. */
export const userTaskPrefix = (user: string) => ["push_task_user", user] as const;
/** The VAPID keys generated in development. */
export const vapidKey = () => ["push_vapid"] as const;
