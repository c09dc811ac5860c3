/** Worker entry: the Hono app built once per isolate, and the cron trigger that keeps clone bundles fresh. */
import type { Env } from "./config.ts";
import { createApp } from "./edge/app.ts";
import { createScheduledHandler } from "./edge/bundles.ts";

const app = createApp();

export default { fetch: app.fetch, scheduled: createScheduledHandler() } satisfies ExportedHandler<Env>;
