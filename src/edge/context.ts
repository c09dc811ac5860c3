/**
 * What one request carries through the app, on the Hono context (`c.var`), typed: set by the
 * middleware of src/edge/middleware.ts and by the handlers, read by the request log. Nothing of
 * a request is kept anywhere else.
 */
import type { Context } from "hono";
import type { Config, Env } from "../config.ts";
import type { CacheStatus } from "../cache/answers.ts";
import type { CacheIsolate } from "../cache/isolate.ts";
import type { OriginCall } from "../origin/client.ts";
import type { CanonicalTarget } from "../protocol/target.ts";

/** What hgedge made of a request, for logs, stats and Server-Timing. */
export type RequestKind =
  | "object"
  | "admin"
  | "refused"
  | "handshake"
  | "v2-command"
  | "v1-capabilities"
  | "v1-clonebundles"
  | "other";

export interface RequestVars {
  config: Config;
  isolate: CacheIsolate;
  /** How this request reaches the origin, and how long the origin took. */
  origin: OriginCall;
  kind: RequestKind;
  /** The canonical form of a Mercurial request (src/protocol/target.ts); undefined for hgedge's own routes. */
  target: CanonicalTarget | undefined;
  /** The request on its canonical path: what every decision and the origin see. */
  request: Request;
  /** The v2 command named in the URL. */
  command: string | undefined;
  /** How the cache answered, and the size of the cached object served. */
  cacheStatus: CacheStatus | undefined;
  objectBytes: number | undefined;
}

export type HgEdge = { Bindings: Env; Variables: RequestVars };
export type EdgeContext = Context<HgEdge>;

/** ctx.waitUntil when running in a Worker; undefined when the app is called without one (some tests). */
export function waitUntilOf(c: EdgeContext): ((promise: Promise<unknown>) => void) | undefined {
  try {
    const ctx = c.executionCtx;
    return (promise) => ctx.waitUntil(promise);
  } catch {
    return undefined;
  }
}
