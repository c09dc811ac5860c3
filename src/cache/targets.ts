/**
 * Redirect targets for one request: those hgedge advertises, and the one a cached object's
 * redirect should use (region preference from redirect.ts, health from health.ts).
 */
import type { Config } from "../config.ts";
import type { ProbedTarget, TargetHealth } from "./health.ts";
import { chooseTarget, type ClientPlace } from "./redirect.ts";
import type { RedirectTarget } from "../protocol/capabilities.ts";
import { text } from "../protocol/cbor.ts";
import type { RedirectRequest } from "../protocol/requests.ts";

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

/**
 * The target this client's redirect should use (see chooseTarget), or undefined: answer inline.
 * Configured targets the client accepts are probed in the background when due, so the health
 * memory stays fresh for the targets clients actually ask for. The default target is this edge
 * itself — answering is proof enough that it is up — and is never probed.
 */
export function chooseRedirectTarget(
  { request, config, targetHealth, waitUntil }: { request: Request; config: Config; targetHealth: TargetHealth; waitUntil?: (promise: Promise<unknown>) => void },
  accepted: RedirectRequest | undefined,
): RedirectTarget | undefined {
  const ours = redirectTargets(config, new URL(request.url));
  const preference = { place: clientPlace(request), ...(config.targetRegions ? { regions: config.targetRegions } : {}) };
  if (!accepted || !config.redirectTargets) return chooseTarget(accepted, ours, preference);
  const acceptedNames = new Set(accepted.targets.map(text));
  const probed = new Map(ours.filter((t) => acceptedNames.has(t.name)).map((t) => [t.name, probedTarget(config, t)]));
  targetHealth.probeIfDue([...probed.values()], config.targetRetrySeconds, waitUntil);
  return chooseTarget(accepted, ours, { ...preference, isHealthy: (name) => targetHealth.isHealthy(probed.get(name) as ProbedTarget) });
}

/** What to probe for a target: the base its redirects point under, else its first advertised URI. */
function probedTarget(config: Config, target: RedirectTarget): ProbedTarget {
  return { name: target.name, url: config.targetObjectUrls?.get(target.name)?.href ?? (target.uris[0] as string) };
}

/** Country and continent from `request.cf` (set by Cloudflare; absent in local runs). */
export function clientPlace(request: Request): ClientPlace {
  const cf = request.cf as { country?: unknown; continent?: unknown } | undefined;
  const place: ClientPlace = {};
  if (typeof cf?.country === "string") place.country = cf.country.toUpperCase();
  if (typeof cf?.continent === "string") place.continent = cf.continent.toUpperCase();
  return place;
}
