/**
 * The Hono app: routes each request to what hgedge does with it. Everything that is not a
 * capabilities handshake or a v2 command passes straight through to the origin.
 */
import { Hono } from "hono";
import { ConfigError, loadConfig, type Env } from "../config.ts";
import { forwardToOrigin, type OriginFetch } from "./passthrough.ts";
import { handleHandshake, handleV2Command } from "./v2.ts";
import { classify } from "./wireproto.ts";

export interface AppOptions {
  /** How to reach the origin (tests substitute a scripted origin). */
  originFetch?: OriginFetch;
}

export function createApp(options: AppOptions = {}): Hono<{ Bindings: Env }> {
  const originFetch: OriginFetch = options.originFetch ?? ((url, init) => fetch(url, init));
  const app = new Hono<{ Bindings: Env }>();
  app.all("*", (c) => {
    const request = c.req.raw;
    const context = { request, config: loadConfig(c.env), originFetch };
    const hg = classify(request);
    switch (hg.kind) {
      case "handshake":
        return handleHandshake(context);
      case "v2-command":
        return handleV2Command(context, hg.command);
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
