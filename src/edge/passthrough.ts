/**
 * Streaming pass-through to the origin: the request goes to ORIGIN_URL + path + query with its
 * method, headers and body; the answer comes back as it arrives. Neither body is buffered, and
 * nothing is retried (a push must never run twice).
 */
import { withIdleTimeout } from "../io/reader.ts";
import type { Config } from "../config.ts";
import { CACHEABLE_COMMANDS } from "../protocol/commands.ts";
import { logEvent } from "../log.ts";
import { canonicalTarget, encodedRepoPath } from "../protocol/target.ts";

/** How the edge reaches the origin; tests substitute a scripted origin. */
export type OriginFetch = (url: string, init: RequestInit) => Promise<Response>;

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

/** The origin's base path without a trailing slash ("" for a server at the root). */
function originBasePath(config: Config): string {
  return config.originUrl.pathname.replace(/\/+$/, "");
}

/**
 * The one place origin URLs are made: the origin's base path followed by a path that is already
 * canonical and percent-encoded (a request's canonical path, or encodedRepoPath of a repository).
 * Client input is never resolved against a base URL (`//host/x` would name another host).
 */
export function originUrl(config: Config, encodedPath: string, search: string): URL {
  const target = new URL(config.originUrl.href);
  target.pathname = originBasePath(config) + (encodedPath.startsWith("/") ? encodedPath : `/${encodedPath}`);
  target.search = search;
  return target;
}

/** Where a request goes on the origin: its (canonical) path and query under ORIGIN_URL. */
export function originUrlFor(config: Config, requestUrl: URL): URL {
  return originUrl(config, requestUrl.pathname, requestUrl.search);
}

/** A canonical repository path (`/` or `/a/b`, decoded) on the origin, with `search`. */
export function originRepoUrl(config: Config, repo: string, search = ""): URL {
  return originUrl(config, encodedRepoPath(repo), search);
}

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

/**
 * Sends the request to the origin. `body` replaces the request's body when the edge already read
 * it (the caller passes the same bytes on). Answers 502/504 itself when the origin fails.
 */
export async function forwardToOrigin(
  request: Request,
  config: Config,
  originFetch: OriginFetch,
  body?: Uint8Array,
): Promise<Response> {
  const url = new URL(request.url);
  const target = originUrlFor(config, url);
  const hasBody = request.method !== "GET" && request.method !== "HEAD";
  // The timeout covers the wait for the response headers only: a multi-GB clone may then
  // stream for as long as it takes.
  const controller = new AbortController();
  const headerTimeout = headerTimeoutMs(request, url, config);
  const timer = headerTimeout && setTimeout(() => controller.abort(new DOMException("origin timeout", "TimeoutError")), headerTimeout.ms);
  const init: RequestInit = {
    method: request.method,
    headers: forwardHeaders(request, url),
    body: hasBody ? (body ?? request.body) : null,
    redirect: "manual",
    signal: controller.signal,
  };
  let upstream: Response;
  const started = Date.now();
  try {
    upstream = await originFetch(target.href, init);
  } catch (error) {
    return originFailure(error, target, controller.signal.aborted ? headerTimeout?.binding : undefined);
  } finally {
    clearTimeout(timer);
    originTimes.set(request, (originTimes.get(request) ?? 0) + Date.now() - started);
  }
  // The body streams for as long as it takes, but not in silence for longer than the idle timeout.
  const streamed = upstream.body ? withIdleTimeout(upstream.body, config.originIdleTimeoutMs) : null;
  return new Response(streamed, {
    status: upstream.status,
    statusText: upstream.statusText,
    headers: responseHeaders(upstream.headers, config, url),
  });
}

/**
 * How long the origin took to answer (headers) each incoming request, in milliseconds, summed
 * over the origin requests it caused (a retried filesdata makes two). Read by the request log.
 */
export const originTimes = new WeakMap<Request, number>();

/**
 * How long the origin may take to send its response headers. A push has no limit: hgweb answers
 * only once it has applied the changes, and a 504 then would only hide a push that goes on at
 * the origin. A cacheable v2 command has ORIGIN_CACHEABLE_TIMEOUT_MS: a stock server works out
 * the whole answer before its first byte, for minutes on a big repository (config.ts).
 */
function headerTimeoutMs(request: Request, url: URL, config: Config): { ms: number; binding: string } | undefined {
  // Read with the same canonical reading that routed the request (src/protocol/target.ts), not
  // a second parser of its own.
  const verdict = request.method === "POST" ? canonicalTarget(url.pathname, url.search) : undefined;
  const target = verdict?.ok ? verdict.target : undefined;
  if (target?.permission === "push") return undefined;
  if (target?.protocol === "v2" && target.command !== undefined && Object.hasOwn(CACHEABLE_COMMANDS, target.command)) {
    return { ms: config.originCacheableTimeoutMs, binding: "ORIGIN_CACHEABLE_TIMEOUT_MS" };
  }
  return { ms: config.originTimeoutMs, binding: "ORIGIN_TIMEOUT_MS" };
}

/**
 * 504 when the origin did not answer within the limit `timeoutBinding` sets, 502 when it could
 * not be reached. The client is told "the origin", never its address (ORIGIN_URL may name an
 * internal host); the log has it.
 */
function originFailure(error: unknown, target: URL, timeoutBinding: string | undefined): Response {
  const reason = error instanceof Error ? error.message : String(error);
  const status = timeoutBinding ? 504 : 502;
  const message = timeoutBinding
    ? `hgedge: the origin did not answer in time (${timeoutBinding}; raise it if the origin is only slow)\n`
    : "hgedge: cannot reach the origin\n";
  logEvent("error", "origin-failure", { status, origin: target.origin, reason });
  return new Response(message, { status, headers: { "content-type": "text/plain; charset=utf-8" } });
}
