/**
 * The redirect decision (protocol.md §6.3, §8.5).
 *
 * A redirect is only allowed to a target the client listed in its request (an empty list means
 * none); among those, `chooseTarget` prefers the client's region and healthy targets. URLs point
 * where src/cache/urls.ts says.
 */
import { text } from "../protocol/cbor.ts";
import type { RedirectTarget } from "../protocol/capabilities.ts";
import type { RedirectRequest } from "../protocol/requests.ts";
import type { TargetRegions } from "../config/targets.ts";

/** Where the client is, as Cloudflare tells the Worker (`request.cf`); either may be unknown. */
export interface ClientPlace {
  country?: string;
  continent?: string;
}

export interface TargetPreference {
  place?: ClientPlace;
  regions?: TargetRegions;
  /** False for a target that failed recently (see health.ts); every target is healthy without it. */
  isHealthy?: (name: string) => boolean;
}

/**
 * The target a redirect should use, or undefined: answer inline.
 *
 * Only targets the client listed may be used (protocol.md §6.3). The spec's "first client-listed
 * target" is no choice at all with real 5.x clients — they list every target they accept, in the
 * order we advertised — so among the accepted ones hgedge prefers the targets configured for the
 * client's country, then its continent, then the rest in REDIRECT_TARGETS order, and skips any
 * that failed recently. When every accepted target is unhealthy the answer is inline: a 5.x
 * client that cannot fetch a redirect aborts the command (it has no fallback), while an inline
 * answer comes from R2 through this edge and works.
 */
export function chooseTarget(
  accepted: RedirectRequest | undefined,
  ours: readonly RedirectTarget[],
  preference: TargetPreference = {},
): RedirectTarget | undefined {
  if (!accepted) return undefined;
  const acceptedNames = new Set(accepted.targets.map(text));
  const isHealthy = preference.isHealthy ?? (() => true);
  return preferenceOrder(ours, preference.place, preference.regions).find((t) => acceptedNames.has(t.name) && isHealthy(t.name));
}

/** Our targets, those preferred for the client's country first, then its continent's, then the rest. */
export function preferenceOrder(ours: readonly RedirectTarget[], place: ClientPlace = {}, regions?: TargetRegions): RedirectTarget[] {
  const preferred = [
    ...((place.country && regions?.countries.get(place.country)) || []),
    ...((place.continent && regions?.continents.get(place.continent)) || []),
  ];
  const byName = new Map(ours.map((t) => [t.name, t]));
  const ordered = new Set<RedirectTarget>();
  for (const name of preferred) {
    const target = byName.get(name);
    if (target) ordered.add(target);
  }
  for (const target of ours) ordered.add(target);
  return [...ordered];
}
