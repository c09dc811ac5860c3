/**
 * Worker entry: the Hono app built once per isolate, the cron trigger that keeps clone bundles
 * fresh, and the Durable Object classes wrangler.toml binds.
 */
import type { Env } from "./config.ts";
import { createApp } from "./edge/app.ts";
import { createScheduledHandler } from "./edge/scheduled.ts";

export { Coalescer } from "./cache/coalescer.ts";
export { StatsCounter } from "./cache/stats.ts";
export { Bundler } from "./cache/bundler.ts";

const app = createApp();

export default { fetch: app.fetch, scheduled: createScheduledHandler() } satisfies ExportedHandler<Env>;
