/**
 * The Hono app: routes each request to what hgedge does with it. Everything that is not a
 * capabilities handshake or a v2 command passes straight through to the origin.
 */
import { Hono } from "hono";
import { ConfigError, loadConfig, type Config, type Env } from "../config.ts";
import { CACHE_STATUS_HEADER, type CacheStatus } from "../cache/answers.ts";
import { StatsRecorder, statsStub, type StatsCounter } from "../cache/stats.ts";
import { servedObjectBytes } from "./cached.ts";
import { forwardToOrigin, originTimes, type OriginFetch } from "./passthrough.ts";
import { checkSignature } from "../cache/signing.ts";
import { handleObjectRequest } from "./objects.ts";
import { OBJECTS_ROUTE_PREFIX, objectNameFromPath } from "../cache/names.ts";
import { VerifiedObjects } from "../cache/objects.ts";
import { ADMIN_ROUTE_PREFIX, handleAdmin } from "./admin.ts";
import { bundleRouteOf, handleBundleRoute, noticePush, type BundleRoute } from "./bundles.ts";
import { handleV2Command, type V2Context } from "./v2.ts";
import { classify, type HgRequest } from "./wireproto.ts";
import { canonicalTarget, type CanonicalTarget } from "../protocol/target.ts";
import { TargetHealth, type ProbeFetch } from "../cache/health.ts";
import { logEvent } from "../log.ts";
import { ByteReader } from "../io/reader.ts";

export interface AppOptions {
  /** How to reach the origin (tests substitute a scripted origin). */
  originFetch?: OriginFetch;
  /** How to probe redirect targets (tests substitute scripted targets). */
  probeFetch?: ProbeFetch;
  /** Milliseconds since the epoch, for the target health memory (tests move time by hand). */
  clock?: () => number;
}

/** ctx.waitUntil when running in a Worker; absent when the app is called without one (tests). */
function executionContext(c: { executionCtx: { waitUntil(promise: Promise<unknown>): void } }): Pick<V2Context, "waitUntil"> {
  try {
    const ctx = c.executionCtx;
    return { waitUntil: (promise) => ctx.waitUntil(promise) };
  } catch {
    return {};
  }
}

/**
 * The content route. Objects of public repositories are served to anyone; the others only on a
 * URL that hgedge signed (after the origin said yes to that client) and that has not expired.
 */
async function serveObject({ request, config, waitUntil }: V2Context, verified: VerifiedObjects): Promise<Response> {
  if (!config.objects || config.cacheRefusal) {
    return plainError(503, `hgedge: cached objects are not served: ${config.cacheRefusal ?? "no OBJECTS bucket is bound"}`);
  }
  const cache = config.popCache && typeof caches !== "undefined" ? caches.default : undefined;
  const options = { verified, ...(cache ? { cache } : {}), ...(waitUntil ? { waitUntil } : {}) };
  if (config.access === "public") return handleObjectRequest(request, config.objects, options);
  const url = new URL(request.url);
  const name = objectNameFromPath(url.pathname);
  const check = name ? await checkSignature(url, name, config.signingKey as string) : { valid: false as const, reason: "not an object" };
  if (!check.valid) {
    logEvent("warn", "object-url-refused", { reason: check.reason });
    return plainError(403, `hgedge: ${check.reason}`);
  }
  const response = await handleObjectRequest(request, config.objects, options);
  // Private data: no shared cache may keep it, and no client beyond the URL's lifetime.
  const headers = new Headers(response.headers);
  headers.set("cache-control", `private, max-age=${Math.max(0, check.expires - Math.floor(Date.now() / 1000))}`);
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers, encodeBody: "manual" });
}

function plainError(status: number, message: string): Response {
  return new Response(`${message}\n`, { status, headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" } });
}

/** hgedge's own routes, ahead of anything Mercurial could be asked. */
type EdgeRoute = { kind: "object" } | { kind: "admin" } | { kind: "refused"; reason: string } | BundleRoute;

/**
 * Where a request goes, and the request to work with: for Mercurial requests, one carrying the
 * canonical path (src/protocol/target.ts), which every later decision and the origin see.
 */
function routeOf(request: Request): { hg: HgRequest | EdgeRoute; request: Request } {
  const url = new URL(request.url);
  if (url.pathname.startsWith(OBJECTS_ROUTE_PREFIX)) return { hg: { kind: "object" }, request };
  if (url.pathname.startsWith(ADMIN_ROUTE_PREFIX)) return { hg: { kind: "admin" }, request };
  const verdict = canonicalTarget(url.pathname, url.search);
  if (!verdict.ok) return { hg: { kind: "refused", reason: verdict.reason }, request };
  const { target } = verdict;
  // hgedge's own routes are only ever named exactly; a look-alike is never forwarded.
  if (target.segments[0] === ".hgedge") return { hg: { kind: "refused", reason: "path: hgedge's routes are /.hgedge/objects/ and /.hgedge/admin/" }, request };
  const canonical = canonicalRequest(request, url, target);
  const hg = classify(canonical, target);
  return { hg: bundleRouteOf(canonical.method, target, hg) ?? hg, request: canonical };
}

/** The same request on the canonical path (the object itself when nothing changes). */
function canonicalRequest(request: Request, url: URL, target: CanonicalTarget): Request {
  if (url.pathname === target.path && url.search === target.search) return request;
  const canonical = new URL(url.origin);
  canonical.pathname = target.path;
  canonical.search = target.search;
  return new Request(canonical.href, request);
}

/** A request whose path or query cannot be read one way only: refused before the origin sees it. */
function refuseTarget(reason: string): Response {
  logEvent("warn", "request-target-refused", { reason });
  return new Response(`hgedge: refused: ${reason}\n`, {
    status: 400,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", [CACHE_STATUS_HEADER]: "BYPASS" },
  });
}

function route(context: V2Context, hg: HgRequest | EdgeRoute, verified: VerifiedObjects): Promise<Response> | Response {
  switch (hg.kind) {
    case "object":
      return serveObject(context, verified);
    case "admin":
      return handleAdmin(context);
    case "refused":
      return refuseTarget(hg.reason);
    case "handshake":
      // Through the clone bundles layer, which adds `clonebundles` to a v1 answer (a v2 one is unchanged).
      return handleBundleRoute(context, { kind: "v1-capabilities", repo: hg.repo, handshake: true });
    case "v1-capabilities":
    case "v1-clonebundles":
      return handleBundleRoute(context, hg);
    case "v2-command":
      return handleV2Command(context, hg);
    default:
      // A push that landed may make the repository's clone bundles stale (src/edge/bundles.ts).
      return forwardToOrigin(context.request, context.config, context.originFetch).then((response) => noticePush(context, response));
  }
}

/**
 * One structured log line per request (Workers Logs indexes JSON), written when the body has
 * been sent (or the client went away) so that it can say how many bytes went out, and
 * `Server-Timing` on v2 answers so a client-side trace shows where the time went (to the
 * response headers; bodies stream on). Cache outcomes also go to the STATS counters.
 */
function observed(context: V2Context, hg: HgRequest | EdgeRoute, response: Response, edgeMs: number): Response {
  const { request, config } = context;
  const originMs = originTimes.get(request);
  const cache = (response.headers.get(CACHE_STATUS_HEADER) ?? undefined) as CacheStatus | undefined;
  const repo = hg.kind === "v2-command" || hg.kind === "handshake" ? hg.repo : undefined;
  const objectBytes = servedObjectBytes.get(request);
  if (cache && repo !== undefined && config.stats && answeredForRepository(cache, originMs, response)) {
    const saved = cache === "HIT" || cache === "REDIRECT" ? (objectBytes ?? 0) : 0;
    statsRecorder(config).record(repo, cache, saved, context.waitUntil);
  }
  const started = Date.now() - edgeMs;
  const line = {
    level: "info",
    event: "request",
    method: request.method,
    path: new URL(request.url).pathname,
    kind: hg.kind,
    ...(repo !== undefined ? { repo } : {}),
    ...(hg.kind === "v2-command" ? { command: hg.command } : {}),
    status: response.status,
    cache,
    objectBytes,
    originMs,
    edgeMs,
  };
  const logDone = (bytes: number, complete: boolean) => console.log(JSON.stringify({ ...line, bytes, complete, totalMs: Date.now() - started }));
  const body = response.body ? countingBody(response.body, logDone) : null;
  if (!body) logDone(0, true);
  const headers = new Headers(response.headers);
  if (hg.kind === "v2-command" || hg.kind === "handshake") {
    const timings = [`edge;dur=${edgeMs}`, ...(originMs === undefined ? [] : [`origin;dur=${originMs}`])];
    headers.set("server-timing", timings.join(", "));
  }
  // hgedge's own answers go out byte for byte. A proxied answer keeps the runtime's default: a
  // body fetched with a Content-Encoding is read decoded, and is encoded again on the way out.
  const proxied = hg.kind === "other" || hg.kind === "v1-capabilities" || hg.kind === "v1-clonebundles";
  const encodeBody = proxied ? "automatic" : "manual";
  return new Response(body, { status: response.status, statusText: response.statusText, headers, encodeBody });
}

/**
 * Whether a repository exists as far as hgedge knows: the answer came from the cache, or the
 * origin answered it with a Mercurial answer. Only those are counted in STATS, so requests to
 * made-up paths (404s, refusals, hgweb error pages) cannot add rows to it.
 */
function answeredForRepository(cache: CacheStatus, originMs: number | undefined, response: Response): boolean {
  if (cache === "HIT" || cache === "REDIRECT") return true;
  const type = response.headers.get("content-type") ?? "";
  return originMs !== undefined && response.status >= 200 && response.status < 300 && type.startsWith("application/mercurial-");
}

/** Passes a body through unchanged, then reports how many bytes went out and whether all did. */
function countingBody(body: ReadableStream<Uint8Array>, done: (bytes: number, complete: boolean) => void): ReadableStream<Uint8Array> {
  const reader = new ByteReader(body, undefined);
  let bytes = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (error) {
        done(bytes, false);
        controller.error(error);
        return;
      }
      if (chunk.done) {
        done(bytes, true);
        controller.close();
        return;
      }
      bytes += chunk.value.byteLength;
      controller.enqueue(chunk.value);
    },
    async cancel(reason) {
      done(bytes, false);
      await reader.cancel(reason);
    },
    // Read only when the client reads: no chunk is pulled (and no fill advanced) ahead of it.
  }, { highWaterMark: 0 });
}

const recorders = new WeakMap<Config, StatsRecorder>();

function statsRecorder(config: Config): StatsRecorder {
  let recorder = recorders.get(config);
  const namespace = config.stats as DurableObjectNamespace<StatsCounter>;
  if (!recorder) recorders.set(config, (recorder = new StatsRecorder(() => statsStub(namespace), config.statsFlushMs)));
  return recorder;
}

export function createApp(options: AppOptions = {}): Hono<{ Bindings: Env }> {
  const originFetch: OriginFetch = options.originFetch ?? ((url, init) => fetch(url, init));
  const targetHealth = new TargetHealth(options.probeFetch ?? ((url, init) => fetch(url, init)), options.clock);
  const verified = new VerifiedObjects();
  const app = new Hono<{ Bindings: Env }>();
  app.all("*", async (c) => {
    const request = c.req.raw;
    const started = Date.now();
    const routed = routeOf(request);
    const { hg } = routed;
    const context: V2Context = { request: routed.request, config: loadConfig(c.env), originFetch, targetHealth, ...executionContext(c) };
    const response = await route(context, hg, verified);
    return observed(context, hg, response, Date.now() - started);
  });
  app.onError((error) => {
    if (error instanceof ConfigError) {
      logEvent("error", "config", { binding: error.binding, message: error.message });
      return new Response(`hgedge is misconfigured: ${error.message}\n`, {
        status: 500,
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    throw error;
  });
  return app;
}
