/**
 * What every request gets, as Hono middleware: its scope (configuration, isolate state, origin
 * call) on the context; the request log line, Server-Timing and the STATS counts once it is
 * answered; its canonical target before any Mercurial route looks at it; and error mapping.
 */
import { createMiddleware } from "hono/factory";
import type { ErrorHandler } from "hono";
import { ConfigError } from "../config.ts";
import { CACHE_STATUS_HEADER, type CacheStatus } from "../cache/answers.ts";
import type { CacheIsolate } from "../cache/isolate.ts";
import { OriginTimings } from "../origin/client.ts";
import { countingBody } from "../io/counting.ts";
import { copyResponse, plainError } from "../io/responses.ts";
import { canonicalTarget, type CanonicalTarget } from "../protocol/target.ts";
import { logEvent } from "../log.ts";
import { waitUntilOf, type EdgeContext, type HgEdge } from "./context.ts";

/** The request's scope: parsed configuration, this isolate's state, a fresh origin call. */
export function requestScope(isolate: CacheIsolate) {
  return createMiddleware<HgEdge>(async (c, next) => {
    const config = isolate.config(c.env);
    c.set("config", config);
    c.set("isolate", isolate);
    c.set("request", c.req.raw);
    c.set("kind", "other");
    c.set("origin", { config, fetch: isolate.originFetch, target: undefined, timings: new OriginTimings(), retryMemory: isolate.retryMemory });
    await next();
  });
}

/**
 * One structured log line per request (Workers Logs indexes JSON), written when the body has been
 * sent (or the client went away) so that it can say how many bytes went out; `Server-Timing` on
 * v2 answers so a client-side trace shows where the time went (to the response headers; bodies
 * stream on); and the cache outcome counted in STATS.
 */
export const observe = createMiddleware<HgEdge>(async (c, next) => {
  const started = Date.now();
  await next();
  const edgeMs = Date.now() - started;
  // A configuration error is answered before any scope exists: nothing to log or count.
  if (!c.var.config) return;
  const { kind, target, command, objectBytes } = c.var;
  const response = c.res;
  const originMs = c.var.origin.timings.ms;
  const cache = c.var.cacheStatus ?? ((response.headers.get(CACHE_STATUS_HEADER) ?? undefined) as CacheStatus | undefined);
  const repo = kind === "v2-command" || kind === "handshake" ? target?.repo : undefined;
  if (cache && repo !== undefined) countInStats(c, repo, cache, originMs, response);
  const line = {
    method: c.req.method,
    path: new URL(c.var.request.url).pathname,
    kind,
    ...(repo !== undefined ? { repo } : {}),
    ...(kind === "v2-command" ? { command } : {}),
    status: response.status,
    cache,
    objectBytes,
    originMs,
    edgeMs,
  };
  const logDone = (bytes: number, complete: boolean) => logEvent("info", "request", { ...line, bytes, complete, totalMs: Date.now() - started });
  const body = response.body ? countingBody(response.body, logDone) : null;
  if (!body) logDone(0, true);
  const timings = [`edge;dur=${edgeMs}`, ...(originMs === undefined ? [] : [`origin;dur=${originMs}`])];
  const serverTiming: Record<string, string> = kind === "v2-command" || kind === "handshake" ? { "server-timing": timings.join(", ") } : {};
  // hgedge's own answers go out byte for byte. A proxied answer keeps the runtime's default: a
  // body fetched with a Content-Encoding is read decoded, and is encoded again on the way out.
  const proxied = kind === "other" || kind === "v1-capabilities" || kind === "v1-clonebundles";
  // Cleared first: Hono's setter would otherwise re-wrap the new response (merging the old one's
  // headers) and lose its encodeBody.
  c.res = undefined;
  c.res = copyResponse(response, { body, headers: serverTiming, encodeBody: proxied ? "automatic" : "manual" });
});

/**
 * Only repositories that exist as far as hgedge knows are counted: the answer came from the
 * cache, or the origin answered with a Mercurial answer. So requests to made-up paths (404s,
 * refusals, hgweb error pages) cannot add rows to STATS.
 */
function countInStats(c: EdgeContext, repo: string, cache: CacheStatus, originMs: number | undefined, response: Response): void {
  const recorder = c.var.isolate.statsRecorder(c.var.config);
  if (!recorder) return;
  const fromCache = cache === "HIT" || cache === "REDIRECT";
  const type = response.headers.get("content-type") ?? "";
  const mercurialAnswer = originMs !== undefined && response.status >= 200 && response.status < 300 && type.startsWith("application/mercurial-");
  if (!fromCache && !mercurialAnswer) return;
  recorder.record(repo, cache, fromCache ? (c.var.objectBytes ?? 0) : 0, waitUntilOf(c));
}

/**
 * Mercurial requests are judged on one reading of their path and query (src/protocol/target.ts):
 * an ambiguous one is refused before the origin sees it; any other continues on its canonical
 * path, which every later decision and the origin see.
 */
export const canonical = createMiddleware<HgEdge>(async (c, next) => {
  const url = new URL(c.req.url);
  const verdict = canonicalTarget(url.pathname, url.search);
  if (!verdict.ok) return refuseTarget(c, verdict.reason);
  // hgedge's own routes are only ever named exactly; a look-alike is never forwarded.
  if (verdict.target.segments[0] === ".hgedge") return refuseTarget(c, "path: hgedge's routes are /.hgedge/objects/ and /.hgedge/admin/");
  const { target } = verdict;
  c.set("target", target);
  c.set("request", onCanonicalPath(c.req.raw, url, target));
  c.var.origin.target = target;
  await next();
});

function refuseTarget(c: EdgeContext, reason: string): Response {
  c.set("kind", "refused");
  logEvent("warn", "request-target-refused", { reason });
  return plainError(400, `refused: ${reason}`, { [CACHE_STATUS_HEADER]: "BYPASS" });
}

/** The same request on the canonical path (the object itself when nothing changes). */
function onCanonicalPath(request: Request, url: URL, target: CanonicalTarget): Request {
  if (url.pathname === target.path && url.search === target.search) return request;
  const canonicalUrl = new URL(url.origin);
  canonicalUrl.pathname = target.path;
  canonicalUrl.search = target.search;
  return new Request(canonicalUrl.href, request);
}

/** A configuration error is the operator's to fix: 500, and the binding named. */
export const mapErrors: ErrorHandler<HgEdge> = (error) => {
  if (error instanceof ConfigError) {
    logEvent("error", "config", { binding: error.binding, message: error.message });
    return plainError(500, `misconfigured: ${error.message}`);
  }
  throw error;
};
