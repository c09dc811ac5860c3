/**
 * Clone bundles for wire protocol v1 clients (Mercurial 6.x/7.x; `hg help -e clonebundles`), the
 * HTTP side: hgedge lists the bundles it made (src/cache/bundlegen.ts) in the manifest the v1
 * `clonebundles` / `clonebundles_manifest` commands answer, so that a clone fetches the bulk from
 * R2 and asks the origin only for what is newer; and it tells the cache when a push landed.
 *
 * - manifest: the client's own request goes to the origin, which checks its credentials; only
 *   to a 200 are our entries prepended (signed URLs unless ACCESS=public), best first.
 * - capabilities: `clonebundles` and `clonebundles_manifest` are added to a v1 capabilities
 *   answer when a bundle exists.
 * - pushes: a v1 `unbundle` the origin answered with success asks the repository's generator
 *   (src/cache/bundler.ts) to check, and regenerate once BUNDLE_MIN_NEW_CHANGESETS landed.
 */
import { servingCache } from "../config.ts";
import { bundleUrls, scheduleAfterPush, servableBundles } from "../cache/bundleservice.ts";
import { forwardToOrigin } from "../origin/client.ts";
import { CLONEBUNDLES_CAPABILITIES, ORIGIN_MANIFEST_COMMAND, prependEntries, requiresSni, type ManifestEntry } from "../protocol/clonebundles.ts";
import { withCapabilities, HG_ERROR_MEDIA_TYPE, HG_MEDIA_TYPE_01 } from "../protocol/v1.ts";
import { logEvent as log } from "../log.ts";
import { waitUntilOf, type EdgeContext } from "./context.ts";
import { forwardHandshake, rewriteBody } from "./v2.ts";

/**
 * A v1 capabilities answer gains `clonebundles` and `clonebundles_manifest` when the repository
 * has a bundle. A handshake goes the same way: when the origin upgraded it to v2 (CBOR), the
 * answer is not a v1 one and is left alone (v2 clients do not use clone bundles).
 */
export async function answerCapabilities(c: EdgeContext, repo: string, handshake: boolean): Promise<Response> {
  const { request, config, origin } = c.var;
  const [response, servable] = await Promise.all([handshake ? forwardHandshake(c) : forwardToOrigin(origin, request), servableBundles(config, repo, false)]);
  if (!servable || servable.bundles.length === 0 || response.status !== 200 || mediaType(response) !== HG_MEDIA_TYPE_01) return response;
  return rewriteBody(response, (body) => new TextEncoder().encode(withCapabilities(new TextDecoder().decode(body), CLONEBUNDLES_CAPABILITIES)));
}

/**
 * `clonebundles` / `clonebundles_manifest`: the origin answers the client (and so decides whether
 * this client may pull) — asked `clonebundles`, which every origin knows — and our entries go
 * ahead of whatever it lists. Any other answer — 401, 403, an error — reaches the client untouched.
 */
export async function answerManifest(c: EdgeContext, repo: string): Promise<Response> {
  const { request, config, origin } = c.var;
  const url = new URL(request.url);
  url.searchParams.set("cmd", ORIGIN_MANIFEST_COMMAND);
  const [response, servable] = await Promise.all([forwardToOrigin(origin, new Request(url, request)), servableBundles(config, repo, true)]);
  const cache = servingCache(config);
  if (!cache || !servable || servable.bundles.length === 0 || response.status !== 200 || mediaType(response) !== HG_MEDIA_TYPE_01) return response;
  const listed = await bundleUrls(config, cache, url.origin, servable.bundles);
  const entries: ManifestEntry[] = listed.map(({ url: location, bundlespec }) => ({
    url: location,
    attributes: { BUNDLESPEC: bundlespec, ...(requiresSni(location) ? { REQUIRESNI: "true" } : {}) },
  }));
  log("info", "clonebundles-manifest", { repo, bundles: listed.map((b) => b.format), changesets: servable.record.changesets });
  return rewriteBody(response, (body) => prependEntries(body, entries));
}

/**
 * Passes the origin's answer on unchanged; when it is the success of a v1 push (`unbundle`
 * answered 200 with a Mercurial body: hgweb answers only once the push was applied), the cache is
 * told in the background, which asks the repository's generator to check.
 */
export function noticePush(c: EdgeContext, response: Response): Response {
  const { request, config, target } = c.var;
  if (request.method !== "POST" || response.status !== 200 || target?.command !== "unbundle" || mediaType(response) === HG_ERROR_MEDIA_TYPE) return response;
  const repo = target.repo ?? "/";
  const scheduled = scheduleAfterPush(config, repo).catch((error: unknown) => log("warn", "bundle-schedule-failed", { repo, error: String(error) }));
  waitUntilOf(c)?.(scheduled);
  return response;
}

function mediaType(response: Response): string {
  return (response.headers.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}
