/** Worker entry: the Hono app built once per isolate. */
import { createApp } from "./edge/app.ts";

export default createApp();
