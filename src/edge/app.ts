/**
 * The Hono app: routes requests to what hgedge does with them. For now every request passes
 * through to the origin; capabilities rewriting and the v2 cache plug in here.
 */
import { Hono } from "hono";
import { ConfigError, loadConfig, type Env } from "../config.ts";
import { passThrough } from "./passthrough.ts";

export function createApp(): Hono<{ Bindings: Env }> {
  const app = new Hono<{ Bindings: Env }>();
  app.all("*", (c) => passThrough(c.req.raw, loadConfig(c.env)));
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
