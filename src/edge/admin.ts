/**
 * The admin API under `/.hgedge/admin/`: operator actions on the cache. It is off unless the
 * ADMIN_TOKEN secret is set; every request must then carry `Authorization: Bearer <token>`
 * (RFC 6750 §2.1), compared in constant time. Every admin request is logged, refused or not.
 *
 * The actions are the table ADMIN_ACTIONS (name → method and handler); src/edge/routes.ts mounts
 * each one, behind `adminAuth`.
 */
import { createMiddleware } from "hono/factory";
import { boundBucket } from "../config.ts";
import { generateNow, bundleStats } from "../cache/bundleservice.ts";
import { bundleRecordName } from "../cache/bundles.ts";
import { repositoryPrefix } from "../cache/keys.ts";
import { deleteByPrefixes } from "../cache/purge.ts";
import { emptyCounters, statsStub, storedUsage } from "../cache/stats.ts";
import { contentRouteUrls } from "../cache/urls.ts";
import { CACHEABLE_COMMANDS } from "../protocol/commands.ts";
import { isCanonicalRepo } from "../protocol/target.ts";
import { logEvent } from "../log.ts";
import type { EdgeContext, HgEdge } from "./context.ts";

export const ADMIN_ROUTE_PREFIX = "/.hgedge/admin/";

/** Most objects one purge request deletes; the answer says whether more remain. */
export const PURGE_MAX_OBJECTS = 10_000;

/** Pages of R2 listing (1000 objects each) one stats request reads at most. */
const STATS_MAX_LIST_PAGES = 100;

/** What an action answers (JSON) and logs. */
export interface AdminResult {
  status: number;
  body: Record<string, unknown>;
}

export interface AdminAction {
  method: "GET" | "POST";
  run(c: EdgeContext): Promise<AdminResult>;
}

export const ADMIN_ACTIONS = {
  purge: { method: "POST", run: purge },
  stats: { method: "GET", run: stats },
  bundles: { method: "POST", run: makeBundles },
} satisfies Record<string, AdminAction>;

/** The action's name in a request path under ADMIN_ROUTE_PREFIX. */
function actionName(c: EdgeContext): string {
  return new URL(c.req.url).pathname.slice(ADMIN_ROUTE_PREFIX.length);
}

/** Off without ADMIN_TOKEN (404); else the bearer token must match (401). */
export const adminAuth = createMiddleware<HgEdge>(async (c, next) => {
  c.set("kind", "admin");
  const token = c.var.config.adminToken;
  if (!token) {
    return answer(c, { status: 404, body: { error: "the admin API is off: set the ADMIN_TOKEN secret (`wrangler secret put ADMIN_TOKEN`) to turn it on" } });
  }
  if (!(await bearerMatches(c.req.header("authorization"), token))) {
    const result = { status: 401, body: { error: "missing or wrong bearer token: send `Authorization: Bearer <ADMIN_TOKEN>`" } };
    return answer(c, result, { "www-authenticate": 'Bearer realm="hgedge-admin"' });
  }
  await next();
});

/** The handler of one action: runs it and answers (a failure is a 500 that says what failed). */
export function runAction(action: AdminAction) {
  return async (c: EdgeContext): Promise<Response> => {
    let result: AdminResult;
    try {
      result = await action.run(c);
    } catch (error) {
      result = { status: 500, body: { error: `${actionName(c)} failed: ${String(error)}` } };
    }
    return answer(c, result);
  };
}

/** Anything under the prefix that no action route took: an unknown action, or the wrong method. */
export function unknownAction(c: EdgeContext): Response {
  const name = actionName(c);
  const action = Object.hasOwn(ADMIN_ACTIONS, name) ? ADMIN_ACTIONS[name as keyof typeof ADMIN_ACTIONS] : undefined;
  if (!action) return answer(c, { status: 404, body: { error: `no admin action "${name}"; known: ${Object.keys(ADMIN_ACTIONS).join(", ")}` } });
  return answer(c, { status: 405, body: { error: `${name} takes ${action.method}` } }, { allow: action.method });
}

/**
 * Both sides are hashed first so that the comparison runs over 32 bytes whatever the lengths,
 * and compared with the runtime's constant-time comparison: its time says nothing about the token.
 */
async function bearerMatches(header: string | undefined, token: string): Promise<boolean> {
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? "");
  const digest = async (text: string) => crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  const [given, expected] = await Promise.all([digest(match?.[1] ?? ""), digest(token)]);
  return crypto.subtle.timingSafeEqual(given, expected) && match !== null;
}

function answer(c: EdgeContext, result: AdminResult, headers: Record<string, string> = {}): Response {
  const level = result.status < 400 ? "info" : "warn";
  logEvent(level, "admin", { action: actionName(c), method: c.req.method, status: result.status, ...result.body });
  return new Response(`${JSON.stringify(result.body, null, 2)}\n`, {
    status: result.status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...headers },
  });
}

/** Reads a JSON object body, or says what was wrong with it. */
async function jsonBody(request: Request): Promise<Record<string, unknown> | string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await request.text());
  } catch {
    return "the body must be a JSON object, e.g. {\"repo\": \"/myrepo\"}";
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return "the body must be a JSON object";
  return parsed as Record<string, unknown>;
}

/** What a repository named to the admin API must look like (the form requests use: isCanonicalRepo). */
function repoFormat(field: string): string {
  return `${field} must be one repository's path as requests name it, e.g. "/" or "/team/project" (no trailing slash, no segment starting with ".")`;
}

/** The body's repository, in the one normal form requests use (isCanonicalRepo), or why not. */
async function repoOfBody(c: EdgeContext): Promise<{ repo: string; body: Record<string, unknown> } | AdminResult> {
  const body = await jsonBody(c.req.raw);
  if (typeof body === "string") return { status: 400, body: { error: body } };
  if (typeof body.repo !== "string" || !isCanonicalRepo(body.repo)) return { status: 400, body: { error: repoFormat('"repo"') } };
  return { repo: body.repo, body };
}

/**
 * POST {"repo": "/path", "command"?: "filesdata"}: deletes that repository's cached objects (or
 * one command's) from R2, up to PURGE_MAX_OBJECTS per request; `more: true` says to call again.
 * Entries already copied into a PoP cache are deleted in this PoP only: other PoPs may serve a
 * purged object's (immutable) bytes until they evict it.
 */
async function purge(c: EdgeContext): Promise<AdminResult> {
  const bucket = boundBucket(c.var.config);
  if (!bucket) return { status: 503, body: { error: "no OBJECTS bucket is bound: nothing to purge" } };
  const parsed = await repoOfBody(c);
  if ("status" in parsed) return parsed;
  const { repo, body } = parsed;
  if (body.command !== undefined && (typeof body.command !== "string" || !Object.hasOwn(CACHEABLE_COMMANDS, body.command))) {
    return { status: 400, body: { error: `"command" must be one of the cached commands: ${Object.keys(CACHEABLE_COMMANDS).join(", ")}` } };
  }
  // A repository's namespace is exactly `<repo>/<command>/<key>` for each cached command: one
  // level under each command's prefix, never another repository's `<repo>/<sub>/…` objects.
  const commands = body.command ? [body.command] : Object.keys(CACHEABLE_COMMANDS);
  const cache = typeof caches === "undefined" ? undefined : caches.default;
  const contentRoute = contentRouteUrls(new URL(c.req.url).origin);
  const dropFromPop = (names: string[]) => Promise.all(names.map((name) => cache?.delete(new Request(contentRoute(name))).catch(() => false)));
  const repoPrefix = repositoryPrefix(repo);
  const prefixes = commands.map((command) => `${repoPrefix}${command}/`);
  const { deleted, more } = await deleteByPrefixes(bucket, prefixes, PURGE_MAX_OBJECTS, dropFromPop);
  const prefix = repoPrefix + (body.command ? `${body.command}/` : "");
  return { status: 200, body: { repo, ...(body.command ? { command: body.command } : {}), prefix, deleted, more } };
}

/**
 * GET [?repo=/path]: per repository, objects and bytes stored (from R2's listing) and the cache
 * counters (from the STATS Durable Object), plus this isolate's filesdata retry counts.
 */
async function stats(c: EdgeContext): Promise<AdminResult> {
  const { config, isolate } = c.var;
  const asked = c.req.query("repo");
  if (asked !== undefined && !isCanonicalRepo(asked)) return { status: 400, body: { error: repoFormat("?repo=") } };
  const bucket = boundBucket(config);
  const stored = bucket ? await storedUsage(bucket, asked ? repositoryPrefix(asked) : "", STATS_MAX_LIST_PAGES) : undefined;
  const counters = config.stats ? await statsStub(config.stats).read() : undefined;
  const names = new Set([...Object.keys(stored?.repos ?? {}), ...Object.keys(counters ?? {})].filter((name) => !asked || name === asked));
  const repositories = Object.fromEntries(
    [...names].sort().map((name) => [name, { stored: stored?.repos[name] ?? { objects: 0, bytes: 0 }, ...(counters ? { counters: counters[name] ?? emptyCounters() } : {}) }]),
  );
  return {
    status: 200,
    body: {
      repositories,
      listing: stored ? { objects: stored.listed, complete: stored.complete } : "no OBJECTS bucket is bound",
      ...(counters ? {} : { counters: "not kept: bind the STATS Durable Object to count hits, redirects, misses and bypasses" }),
      isolate: { filesdataRetries: isolate.retryMemory.retries, filesdataDirect: isolate.retryMemory.direct },
      bundles: await bundleStats(config, asked),
    },
  };
}

/**
 * POST {"repo": "/path"}: makes new bundles of that repository now and answers with their record
 * (200), or with why not — the previous bundles then stay current (`kept`).
 */
async function makeBundles(c: EdgeContext): Promise<AdminResult> {
  const parsed = await repoOfBody(c);
  if ("status" in parsed) return parsed;
  const { repo } = parsed;
  const { config, isolate } = c.var;
  const outcome = await generateNow(config, isolate.originFetch, repo, isolate.bundlesInProgress);
  if (!outcome.ok) return { status: outcome.status, body: { repo, error: outcome.error, ...(outcome.kept ? { kept: outcome.kept } : {}) } };
  const { record } = outcome;
  return {
    status: 200,
    body: { repo, bundles: record.bundles, ...(record.skipped ? { skipped: record.skipped } : {}), record: bundleRecordName(repo), changesets: record.changesets, heads: record.heads, removed: outcome.removed, retired: outcome.retired },
  };
}
