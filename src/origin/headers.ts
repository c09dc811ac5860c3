/**
 * Which headers cross the edge, each way: hop-by-hop ones never do, client-address claims are
 * replaced by hgedge's own, and a Location that points into the origin is rewritten to the edge.
 */
import type { Config } from "../config.ts";
import { originBasePath } from "./urls.ts";

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) are for one connection only: never forwarded. `Expect`
 * belongs with them here: a `100-continue` would make the origin send an interim 100, which the
 * runtime hands back as the final status (and hgedge's fetch never waits for it anyway).
 */
export const HOP_BY_HOP = [
  "connection",
  "expect",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
];

/** Headers named in `Connection` are hop-by-hop too. */
function connectionHeaders(headers: Headers): string[] {
  return (headers.get("connection") ?? "")
    .split(",")
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
}

function withoutHopByHop(headers: Headers): Headers {
  const out = new Headers(headers);
  for (const name of connectionHeaders(headers)) out.delete(name);
  for (const name of HOP_BY_HOP) out.delete(name);
  return out;
}

/**
 * Headers that say who the client is. hgedge sets the X-Forwarded family itself; these and the
 * other address claims a client could make up are never passed on from the client.
 */
const CLIENT_ADDRESS_CLAIMS = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "x-real-ip", "true-client-ip"];

/**
 * The client-address headers hgedge sends to the origin for a request: on the forwarded request
 * and on every access check made for it, so that an origin deciding by address judges both alike.
 * `CF-Connecting-IP` is set by Cloudflare (a client's own is overwritten) and is passed on.
 */
export function clientAddressHeaders(request: Request, requestUrl: URL = new URL(request.url)): Headers {
  const out = new Headers();
  const clientIp = request.headers.get("cf-connecting-ip");
  if (clientIp) {
    out.set("cf-connecting-ip", clientIp);
    out.set("x-forwarded-for", clientIp);
  }
  out.set("x-forwarded-proto", requestUrl.protocol.replace(/:$/, ""));
  out.set("x-forwarded-host", requestUrl.host);
  return out;
}

export function forwardHeaders(request: Request, requestUrl: URL): Headers {
  const out = withoutHopByHop(request.headers);
  out.delete("host");
  for (const name of CLIENT_ADDRESS_CLAIMS) out.delete(name);
  for (const [name, value] of clientAddressHeaders(request, requestUrl)) out.set(name, value);
  return out;
}

/**
 * The origin's response headers for the client: hop-by-hop ones dropped, and a `Location` that
 * points into the origin rewritten to the same place on the edge, so that clients stay with us.
 */
export function responseHeaders(headers: Headers, config: Config, requestUrl: URL): Headers {
  const out = withoutHopByHop(headers);
  const location = headers.get("location");
  if (location) out.set("location", rewriteLocation(location, config, requestUrl));
  return out;
}

function rewriteLocation(location: string, config: Config, requestUrl: URL): string {
  let target: URL;
  try {
    target = new URL(location, config.originUrl.href + "/");
  } catch {
    return location;
  }
  const basePath = originBasePath(config);
  if (target.origin !== config.originUrl.origin) return location;
  if (basePath && target.pathname !== basePath && !target.pathname.startsWith(`${basePath}/`)) return location;
  const edge = new URL(requestUrl.origin);
  edge.pathname = target.pathname.slice(basePath.length) || "/";
  edge.search = target.search;
  edge.hash = target.hash;
  return edge.href;
}
