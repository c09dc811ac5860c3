/**
 * The Hono app: routes each request to what hgedge does with it. Everything that is not a
 * capabilities handshake or a v2 command passes straight through to the origin.
 */
import { Hono } from "hono";
import { ConfigError, loadConfig, type Env } from "../config.ts";
import { forwardToOrigin, type OriginFetch } from "./passthrough.ts";
import { checkSignature } from "../cache/signing.ts";
import { OBJECTS_ROUTE_PREFIX, handleObjectRequest, objectNameFromPath } from "./objects.ts";
import { handleHandshake, handleV2Command, type V2Context } from "./v2.ts";
import { classify } from "./wireproto.ts";

export interface AppOptions {
  /** How to reach the origin (tests substitute a scripted origin). */
  originFetch?: OriginFetch;
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
async function serveObject({ request, config, waitUntil }: V2Context): Promise<Response> {
  if (!config.objects || config.cacheRefusal) {
    return plainError(503, `hgedge: cached objects are not served: ${config.cacheRefusal ?? "no OBJECTS bucket is bound"}`);
  }
  const cache = typeof caches === "undefined" ? undefined : caches.default;
  const options = { ...(cache ? { cache } : {}), ...(waitUntil ? { waitUntil } : {}) };
  if (config.access === "public") return handleObjectRequest(request, config.objects, options);
  const url = new URL(request.url);
  const name = objectNameFromPath(url.pathname);
  const check = name ? await checkSignature(url, name, config.signingKey as string) : { valid: false as const, reason: "not an object" };
  if (!check.valid) {
    console.warn(JSON.stringify({ level: "warn", event: "object-url-refused", reason: check.reason }));
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

export function createApp(options: AppOptions = {}): Hono<{ Bindings: Env }> {
  const originFetch: OriginFetch = options.originFetch ?? ((url, init) => fetch(url, init));
  const app = new Hono<{ Bindings: Env }>();
  app.all("*", (c) => {
    const request = c.req.raw;
    const context: V2Context = { request, config: loadConfig(c.env), originFetch, ...executionContext(c) };
    if (new URL(request.url).pathname.startsWith(OBJECTS_ROUTE_PREFIX)) return serveObject(context);
    const hg = classify(request);
    switch (hg.kind) {
      case "handshake":
        return handleHandshake(context);
      case "v2-command":
        return handleV2Command(context, hg);
      default:
        return forwardToOrigin(request, context.config, originFetch);
    }
  });
  app.onError((error) => {
    if (error instanceof ConfigError) {
      console.error(JSON.stringify({ level: "error", event: "config", binding: error.binding, message: error.message }));
      return new Response(`hgedge is misconfigured: ${error.message}\n`, {
        status: 500,
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    throw error;
  });
  return app;
}
