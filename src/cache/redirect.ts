/**
 * The redirect decision and where redirects point (protocol.md §6.3, §8.5).
 *
 * A redirect is only allowed to a target the client listed in its request (an empty list means
 * none), and the spec asks for the first client-listed target the server serves. URLs point at
 * the Worker's content route, or at PUBLIC_OBJECTS_URL (an R2 custom domain) when configured.
 * Signed URLs for private repositories will slot in as another ObjectUrlBuilder.
 */
import { text } from "../protocol/cbor.ts";
import type { RedirectTarget } from "../protocol/capabilities.ts";
import type { RedirectRequest } from "../protocol/requests.ts";

export const OBJECTS_PATH = "/.hgedge/objects/";

/** The first target the client accepts that we advertise, or undefined: answer inline. */
export function chooseTarget(accepted: RedirectRequest | undefined, ours: readonly RedirectTarget[]): RedirectTarget | undefined {
  if (!accepted) return undefined;
  for (const name of accepted.targets.map(text)) {
    const target = ours.find((t) => t.name === name);
    if (target) return target;
  }
  return undefined;
}

export type ObjectUrlBuilder = (objectName: string) => string;

/** Each path segment percent-encoded: repository paths may hold any character. */
export function objectPath(objectName: string): string {
  return objectName.split("/").map(encodeURIComponent).join("/");
}

/** URLs on the content route of the edge the client is talking to. */
export function contentRouteUrls(edgeOrigin: string): ObjectUrlBuilder {
  return (objectName) => `${edgeOrigin}${OBJECTS_PATH}${objectPath(objectName)}`;
}

/** URLs on an R2 public/custom domain serving the bucket directly. */
export function publicBucketUrls(base: URL): ObjectUrlBuilder {
  const prefix = base.href.replace(/\/+$/, "");
  return (objectName) => `${prefix}/${objectPath(objectName)}`;
}
