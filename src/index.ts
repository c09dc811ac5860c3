/** Worker entry: the Hono app built once per isolate, and the Durable Object classes it binds. */
import { createApp } from "./edge/app.ts";

export { Coalescer } from "./cache/coalescer.ts";
export { StatsCounter } from "./cache/stats.ts";

export default createApp();
