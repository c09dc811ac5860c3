import type { Config } from "../config.ts";
import type { RedirectTarget } from "../protocol/capabilities.ts";

/**
 * Targets to advertise: the configured ones, or one named `hgedge` on the URL the client used,
 * so that local runs work with no set-up. `tlsversions` includes 1.2 because 5.x clients know
 * nothing newer and would drop a target listing only 1.3 (protocol.md §6.2).
 */
export function redirectTargets(config: Config, requestUrl: URL): RedirectTarget[] {
  if (config.redirectTargets) return config.redirectTargets;
  const protocol = requestUrl.protocol.replace(/:$/, "");
  const target: RedirectTarget = { name: "hgedge", protocol, uris: [`${requestUrl.origin}/`] };
  if (protocol === "https") target.tlsversions = ["1.2", "1.3"];
  return [target];
}
