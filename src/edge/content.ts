/**
 * Who may read the content route (`/.hgedge/objects/<name>`; the HTTP of it is objects.ts):
 * objects of public repositories anyone; the others only on a URL that hgedge signed (after the
 * origin said yes to that client) and that has not expired.
 */
import { checkSignature } from "../cache/signing.ts";
import { copyResponse, plainError } from "../io/responses.ts";
import { logEvent } from "../log.ts";
import { waitUntilOf, type EdgeContext } from "./context.ts";
import { objectNameFromPath } from "../cache/names.ts";
import { handleObjectRequest, type ObjectRouteOptions } from "./objects.ts";

export async function serveObject(c: EdgeContext): Promise<Response> {
  c.set("kind", "object");
  const { config, request } = c.var;
  const cache = config.cache;
  if (cache.mode === "off") return plainError(503, `cached objects are not served: ${cache.reason}`);
  const waitUntil = waitUntilOf(c);
  const pop = config.popCache && typeof caches !== "undefined" ? caches.default : undefined;
  const options: ObjectRouteOptions = { verified: c.var.isolate.verified, ...(pop ? { cache: pop } : {}), ...(waitUntil ? { waitUntil } : {}) };
  if (cache.mode === "public") return handleObjectRequest(request, cache.bucket, options);
  const url = new URL(request.url);
  const name = objectNameFromPath(url.pathname);
  const check = name ? await checkSignature(url, name, cache.signingKey) : { valid: false as const, reason: "not an object" };
  if (!check.valid) {
    logEvent("warn", "object-url-refused", { reason: check.reason });
    return plainError(403, check.reason);
  }
  const response = await handleObjectRequest(request, cache.bucket, options);
  // Private data: no shared cache may keep it, and no client beyond the URL's lifetime.
  const maxAge = Math.max(0, check.expires - Math.floor(Date.now() / 1000));
  return copyResponse(response, { headers: { "cache-control": `private, max-age=${maxAge}` }, encodeBody: "manual" });
}
