/** The Worker's `scheduled` handler (the cron trigger): keeps BUNDLE_REPOS' clone bundles fresh. */
import { parseConfig, type Env } from "../config.ts";
import { refreshConfiguredBundles } from "../cache/bundleservice.ts";
import type { OriginFetch } from "../origin/client.ts";
import { runtimeFetch } from "../io/fetch.ts";

export function createScheduledHandler(options: { originFetch?: OriginFetch } = {}) {
  const originFetch = options.originFetch ?? runtimeFetch;
  return async (_controller: ScheduledController, env: Env): Promise<void> => {
    await refreshConfiguredBundles(parseConfig(env), originFetch);
  };
}
