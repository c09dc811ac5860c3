/**
 * Where a cached object can be fetched: on the content route of the edge the client talks to,
 * under a redirect target's TARGET_OBJECT_URLS base, or on PUBLIC_OBJECTS_URL (an R2 custom
 * domain); private repositories' URLs are signed and expire (signing.ts).
 */
import { OBJECTS_PATH } from "../config/targets.ts";
import type { Config, ServingCache } from "../config.ts";
import { signedUrls } from "./signing.ts";

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

/**
 * Where a redirect (or a clone-bundle manifest entry) points: under the chosen target's
 * TARGET_OBJECT_URLS base if it has one; else, for public repositories, the R2 custom domain if
 * there is one, else the content route; for the others always a signed, expiring URL (on the
 * target's base, which is then an hgedge content route).
 */
export async function objectUrl(config: Config, cache: ServingCache, edgeOrigin: string, name: string, targetBase?: URL): Promise<string> {
  const route = targetBase ? publicBucketUrls(targetBase) : contentRouteUrls(edgeOrigin);
  if (cache.mode === "public") return (!targetBase && config.publicObjectsUrl ? publicBucketUrls(config.publicObjectsUrl) : route)(name);
  const sign = await signedUrls(route, cache.signingKey, config.urlTtlSeconds);
  return sign(name);
}
