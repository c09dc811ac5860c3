/**
 * Talking to the origin. Every request hgedge sends there goes through `fetchOrigin` (one way to
 * time out: the wait for the response headers, with the binding that sets it named in the error),
 * and a client's request is passed on by `forwardToOrigin`: to ORIGIN_URL + path + query with its
 * method, headers and body, the answer coming back as it arrives. Neither body is buffered, and
 * nothing is retried here (a push must never run twice).
 */
import type { Config } from "../config.ts";
import type { FetchFunction } from "../io/fetch.ts";
import { withIdleTimeout } from "../io/reader.ts";
import { plainError } from "../io/responses.ts";
import { CACHEABLE_COMMANDS } from "../protocol/commands.ts";
import type { CanonicalTarget } from "../protocol/target.ts";
import { logEvent } from "../log.ts";
import { forwardHeaders, responseHeaders } from "./headers.ts";
import type { RetryMemory } from "./retrymemory.ts";
import { originUrlFor } from "./urls.ts";

/** How hgedge reaches the origin; tests substitute a scripted origin. */
export type OriginFetch = FetchFunction;

/** How long the origin has to send its response headers, and the binding that says so. */
export interface HeaderTimeout {
  ms: number;
  binding: string;
}

export class OriginTimeout extends Error {
  override readonly name = "OriginTimeout";
  constructor(readonly timeout: HeaderTimeout) {
    super(`the origin did not answer within ${timeout.ms} ms (${timeout.binding}; raise it if the origin is only slow)`);
  }
}

/** The general limit: ORIGIN_TIMEOUT_MS. */
export function originTimeout(config: Config): HeaderTimeout {
  return { ms: config.originTimeoutMs, binding: "ORIGIN_TIMEOUT_MS" };
}

/**
 * `fetch` with a limit on the wait for the response headers only: once they are there, a
 * multi-GB body may stream for as long as it takes. Throws OriginTimeout when the limit ran out,
 * and the fetch's own error when the origin could not be reached.
 */
export async function fetchOrigin(fetch: OriginFetch, url: URL | string, init: RequestInit, timeout: HeaderTimeout | undefined): Promise<Response> {
  const controller = new AbortController();
  const timer = timeout && setTimeout(() => controller.abort(new OriginTimeout(timeout)), timeout.ms);
  try {
    return await fetch(typeof url === "string" ? url : url.href, { ...init, signal: controller.signal });
  } catch (error) {
    if (timeout && controller.signal.aborted) throw new OriginTimeout(timeout);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** How long the origin spent before answering, summed over the calls made for one client request. */
export class OriginTimings {
  /** Undefined until a call to the origin was made. */
  ms: number | undefined;

  add(ms: number): void {
    this.ms = (this.ms ?? 0) + ms;
  }
}

/**
 * What calls to the origin on behalf of one client request need: the configuration, how to reach
 * the origin, the request's canonical target (which decides its header timeout), where to add up
 * the origin's time (read by the request log), and the isolate's filesdata retry memory.
 */
export interface OriginCall {
  config: Config;
  fetch: OriginFetch;
  target: CanonicalTarget | undefined;
  timings: OriginTimings;
  retryMemory: RetryMemory;
}

/**
 * Sends the request to the origin. `body` replaces the request's body when the edge already read
 * it (the caller passes the same bytes on). Answers 502/504 itself when the origin fails.
 */
export async function forwardToOrigin(call: OriginCall, request: Request, body?: Uint8Array): Promise<Response> {
  const { config } = call;
  const url = new URL(request.url);
  const target = originUrlFor(config, url);
  const hasBody = request.method !== "GET" && request.method !== "HEAD";
  const init: RequestInit = {
    method: request.method,
    headers: forwardHeaders(request, url),
    body: hasBody ? (body ?? request.body) : null,
    redirect: "manual",
  };
  let upstream: Response;
  const started = Date.now();
  try {
    upstream = await fetchOrigin(call.fetch, target, init, headerTimeout(config, request.method, call.target));
  } catch (error) {
    return originFailure(error, target);
  } finally {
    call.timings.add(Date.now() - started);
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
 * How long the origin may take to send its response headers, decided on the request's canonical
 * target. A push has no limit: hgweb answers only once it has applied the changes, and a 504 then
 * would only hide a push that goes on at the origin. A cacheable v2 command has
 * ORIGIN_CACHEABLE_TIMEOUT_MS: a stock server works out the whole answer before its first byte,
 * for minutes on a big repository (config.ts).
 */
function headerTimeout(config: Config, method: string, target: CanonicalTarget | undefined): HeaderTimeout | undefined {
  const posted = method === "POST" ? target : undefined;
  if (posted?.permission === "push") return undefined;
  if (posted?.protocol === "v2" && posted.command !== undefined && Object.hasOwn(CACHEABLE_COMMANDS, posted.command)) {
    return { ms: config.originCacheableTimeoutMs, binding: "ORIGIN_CACHEABLE_TIMEOUT_MS" };
  }
  return originTimeout(config);
}

/**
 * 504 when the origin did not answer within its limit, 502 when it could not be reached. The
 * client is told "the origin", never its address (ORIGIN_URL may name an internal host); the log
 * has it.
 */
function originFailure(error: unknown, target: URL): Response {
  const reason = error instanceof Error ? error.message : String(error);
  const timedOut = error instanceof OriginTimeout;
  const status = timedOut ? 504 : 502;
  logEvent("error", "origin-failure", { status, origin: target.origin, reason });
  const message = timedOut ? `the origin did not answer in time (${error.timeout.binding}; raise it if the origin is only slow)` : "cannot reach the origin";
  return plainError(status, message);
}
