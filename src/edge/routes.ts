/**
 * Every route hgedge answers, in one place, in the order they are tried:
 *
 * | route                                   | what                                             | handler                      |
 * |-----------------------------------------|--------------------------------------------------|------------------------------|
 * | GET/HEAD /.hgedge/objects/<name>        | a cached object (redirects point here)           | edge/objects.ts              |
 * | /.hgedge/admin/<action>                 | operator API, bearer token                       | edge/admin.ts                |
 * | — every other request: its canonical target decides (src/protocol/target.ts) —                            |
 * | POST <repo>/api/<v2>/<ro|rw>/<command>  | a v2 command; cacheable ones from the cache      | edge/v2.ts → cache/service   |
 * | GET <repo>?cmd=capabilities + upgrade   | the v2 handshake, with our redirect targets      | edge/clonebundles.ts, v2.ts  |
 * | GET <repo>?cmd=capabilities             | v1 capabilities, `clonebundles` added            | edge/clonebundles.ts         |
 * | <repo>?cmd=clonebundles[_manifest]      | the manifest, our bundles first                  | edge/clonebundles.ts         |
 * | anything else                           | passed through to the origin (pushes noticed)    | origin/client.ts             |
 *
 * hgedge's own routes are matched on the raw path (app.ts gives Hono the undecoded path), so
 * `/.hgedge/%61dmin/` is not the admin API: it is a Mercurial-looking path, which the canonical
 * reading then refuses.
 */
import type { Hono } from "hono";
import { OBJECTS_ROUTE_PREFIX } from "../cache/names.ts";
import { forwardToOrigin } from "../origin/client.ts";
import { MANIFEST_COMMANDS } from "../protocol/clonebundles.ts";
import type { CanonicalTarget } from "../protocol/target.ts";
import { ADMIN_ACTIONS, ADMIN_ROUTE_PREFIX, adminAuth, runAction, unknownAction } from "./admin.ts";
import { answerCapabilities, answerManifest, noticePush } from "./clonebundles.ts";
import type { EdgeContext, HgEdge, RequestKind } from "./context.ts";
import { canonical } from "./middleware.ts";
import { serveObject } from "./content.ts";
import { handleV2Command, type V2Command } from "./v2.ts";
import { asksForUpgrade } from "./wireproto.ts";

/** A Mercurial route: which canonical targets it takes, and what answers them. */
interface MercurialRoute {
  kind: RequestKind;
  /** The route's handler when it takes the request, else undefined. */
  match(target: CanonicalTarget, request: Request): ((c: EdgeContext) => Promise<Response>) | undefined;
}

const MERCURIAL_ROUTES: MercurialRoute[] = [
  {
    kind: "v2-command",
    match: (t) => {
      const v2 = v2CommandOf(t);
      return v2 && ((c) => handleV2Command(c, v2));
    },
  },
  {
    kind: "handshake",
    match: (t, request) => {
      const repo = v1Repo(t, ["capabilities"]);
      return repo !== undefined && request.method === "GET" && asksForUpgrade(request.headers) ? (c) => answerCapabilities(c, repo, true) : undefined;
    },
  },
  {
    kind: "v1-capabilities",
    match: (t, request) => {
      const repo = v1Repo(t, ["capabilities"]);
      return repo !== undefined && request.method === "GET" ? (c) => answerCapabilities(c, repo, false) : undefined;
    },
  },
  {
    kind: "v1-clonebundles",
    match: (t) => {
      const repo = v1Repo(t, MANIFEST_COMMANDS);
      return repo !== undefined ? (c) => answerManifest(c, repo) : undefined;
    },
  },
  {
    kind: "other",
    match: () => async (c) => noticePush(c, await forwardToOrigin(c.var.origin, c.var.request)),
  },
];

function v2CommandOf(t: CanonicalTarget): V2Command | undefined {
  if (t.protocol !== "v2" || !t.access || t.command === undefined || t.repo === undefined) return undefined;
  return { repo: t.repo, permission: t.access, command: t.command };
}

/** The repository of a v1 request for one of `commands`, else undefined. */
function v1Repo(t: CanonicalTarget, commands: readonly string[]): string | undefined {
  return t.protocol === "v1" && t.command !== undefined && commands.includes(t.command) ? t.repo : undefined;
}

/** Mounts every route on `app` (whose scope and observe middleware are already in place). */
export function mountRoutes(app: Hono<HgEdge>): void {
  app.all(`${OBJECTS_ROUTE_PREFIX}*`, serveObject);

  app.use(`${ADMIN_ROUTE_PREFIX}*`, adminAuth);
  for (const [name, action] of Object.entries(ADMIN_ACTIONS)) app.on(action.method, `${ADMIN_ROUTE_PREFIX}${name}`, runAction(action));
  app.all(`${ADMIN_ROUTE_PREFIX}*`, unknownAction);

  app.all("*", canonical, (c) => {
    const target = c.var.target;
    if (!target) throw new Error("unreachable: the canonical middleware sets the target or refuses");
    for (const route of MERCURIAL_ROUTES) {
      const handler = route.match(target, c.var.request);
      if (!handler) continue;
      c.set("kind", route.kind);
      return handler(c);
    }
    throw new Error("unreachable: the last Mercurial route takes every request");
  });
}
