/**
 * The Hono app: the isolate's state, made once; the middleware every request gets; and the
 * routes of src/edge/routes.ts.
 */
import { Hono } from "hono";
import { CacheIsolate, type IsolateOptions } from "../cache/isolate.ts";
import type { HgEdge } from "./context.ts";
import { mapErrors, observe, requestScope } from "./middleware.ts";
import { mountRoutes } from "./routes.ts";

/** How to build the isolate's state, or the state itself (a test that looks into it afterwards). */
export type AppOptions = IsolateOptions & { isolate?: CacheIsolate };

export function createApp(options: AppOptions = {}): Hono<HgEdge> {
  const isolate = options.isolate ?? new CacheIsolate(options);
  // Routes are matched on the path as received, never decoded: every decision on a Mercurial
  // path is taken on its canonical form (src/protocol/target.ts), not on Hono's reading of it.
  const app = new Hono<HgEdge>({ getPath: (request) => new URL(request.url).pathname });
  app.use(requestScope(isolate), observe);
  mountRoutes(app);
  app.onError(mapErrors);
  return app;
}
