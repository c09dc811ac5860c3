/**
 * Streaming pass-through to the origin: the request goes to ORIGIN_URL + path + query with its
 * method, headers and body; the answer comes back as it arrives. Neither body is buffered.
 */
import type { Config } from "../config.ts";

/** Hop-by-hop headers (RFC 9110 §7.6.1) are for one connection only: never forwarded. */
const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
];

export function originUrlFor(config: Config, requestUrl: URL): URL {
  const target = new URL(config.originUrl.href);
  target.pathname = config.originUrl.pathname + requestUrl.pathname;
  target.search = requestUrl.search;
  return target;
}

export function forwardHeaders(headers: Headers, clientIp: string | null, requestUrl: URL): Headers {
  const out = new Headers(headers);
  for (const name of connectionHeaders(headers)) out.delete(name);
  for (const name of HOP_BY_HOP) out.delete(name);
  out.delete("host");
  if (clientIp) {
    const prior = headers.get("x-forwarded-for");
    out.set("x-forwarded-for", prior ? `${prior}, ${clientIp}` : clientIp);
  }
  out.set("x-forwarded-proto", requestUrl.protocol.replace(/:$/, ""));
  out.set("x-forwarded-host", requestUrl.host);
  return out;
}

/** Headers named in `Connection` are hop-by-hop too. */
function connectionHeaders(headers: Headers): string[] {
  return (headers.get("connection") ?? "")
    .split(",")
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
}

export function responseHeaders(headers: Headers): Headers {
  const out = new Headers(headers);
  for (const name of connectionHeaders(headers)) out.delete(name);
  for (const name of HOP_BY_HOP) out.delete(name);
  return out;
}

export async function passThrough(request: Request, config: Config): Promise<Response> {
  const url = new URL(request.url);
  const target = originUrlFor(config, url);
  const hasBody = request.method !== "GET" && request.method !== "HEAD";
  const init: RequestInit = {
    method: request.method,
    headers: forwardHeaders(request.headers, request.headers.get("cf-connecting-ip"), url),
    body: hasBody ? request.body : null,
    redirect: "manual",
    signal: AbortSignal.timeout(config.originTimeoutMs),
  };
  let upstream: Response;
  try {
    upstream = await fetch(target.href, init);
  } catch (error) {
    return originFailure(error, target);
  }
  return new Response(upstream.body, {
    status: upstream.status,
    statusText: upstream.statusText,
    headers: responseHeaders(upstream.headers),
  });
}

/** 504 when the origin did not answer in time, 502 when it could not be reached. */
function originFailure(error: unknown, target: URL): Response {
  const timedOut = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
  const reason = error instanceof Error ? error.message : String(error);
  const status = timedOut ? 504 : 502;
  const message = timedOut
    ? `hgedge: the origin ${target.origin} did not answer in time\n`
    : `hgedge: cannot reach the origin ${target.origin}: ${reason}\n`;
  return new Response(message, { status, headers: { "content-type": "text/plain; charset=utf-8" } });
}
