/**
 * The Hono app: routes each request to what hgedge does with it. Everything that is not a
 * capabilities handshake or a v2 command passes straight through to the origin.
 */
import { Hono } from "hono";
import { ConfigError, loadConfig, type Env } from "../config.ts";
import { forwardToOrigin, type OriginFetch } from "./passthrough.ts";
import { OBJECTS_ROUTE_PREFIX, handleObjectRequest } from "./objects.ts";
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
 * The content route. Until origin authorization and signed URLs exist, cached objects are only
 * served when the deployment declared its repositories public (ACCESS=public).
 */
function serveObject({ request, config, waitUntil }: V2Context): Promise<Response> | Response {
  if (!config.objects || config.access !== "public") {
    return new Response("hgedge: cached objects are not served by this deployment (ACCESS is not public)\n", {
      status: 404,
      headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
    });
  }
  const cache = typeof caches === "undefined" ? undefined : caches.default;
  return handleObjectRequest(request, config.objects, { ...(cache ? { cache } : {}), ...(waitUntil ? { waitUntil } : {}) });
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
