/**
 * The admin API under `/.hgedge/admin/`: operator actions on the cache. It is off unless the
 * ADMIN_TOKEN secret is set; every request must then carry `Authorization: Bearer <token>`
 * (RFC 6750 §2.1), compared in constant time. Every admin request is logged, refused or not.
 *
 * Actions are a table (name → method and handler) so that each feature adds its own entry.
 */
import { repositoryPrefix } from "../cache/keys.ts";
import { CACHEABLE_COMMANDS } from "../protocol/commands.ts";
import { isCanonicalRepo } from "../protocol/target.ts";
import { deleteByPrefixes } from "../cache/purge.ts";
import { emptyCounters, statsStub, storedUsage } from "../cache/stats.ts";
import { retryStats } from "./retry.ts";
import { contentRouteUrls } from "../cache/redirect.ts";
import type { V2Context } from "./v2.ts";
import { bundlesAdminAction, bundleStats } from "./bundles.ts";
import { logEvent } from "../log.ts";

export const ADMIN_ROUTE_PREFIX = "/.hgedge/admin/";

/** Most objects one purge request deletes; the answer says whether more remain. */
export const PURGE_MAX_OBJECTS = 10_000;

export interface AdminAction {
  method: "GET" | "POST";
  run(context: V2Context, url: URL): Promise<AdminResult>;
}

/** What an action answers (JSON) and logs. */
export interface AdminResult {
  status: number;
  body: Record<string, unknown>;
}

export const ADMIN_ACTIONS: Record<string, AdminAction> = {
  purge: { method: "POST", run: purge },
  stats: { method: "GET", run: stats },
  bundles: { method: "POST", run: bundlesAdminAction },
};

export async function handleAdmin(context: V2Context): Promise<Response> {
  const { request, config } = context;
  const url = new URL(request.url);
  const name = url.pathname.slice(ADMIN_ROUTE_PREFIX.length);
  if (!config.adminToken) {
    return answer(request, name, { status: 404, body: { error: "the admin API is off: set the ADMIN_TOKEN secret (`wrangler secret put ADMIN_TOKEN`) to turn it on" } });
  }
  if (!(await bearerMatches(request.headers.get("authorization"), config.adminToken))) {
    const result = { status: 401, body: { error: "missing or wrong bearer token: send `Authorization: Bearer <ADMIN_TOKEN>`" } };
    return answer(request, name, result, { "www-authenticate": 'Bearer realm="hgedge-admin"' });
  }
  const action = Object.hasOwn(ADMIN_ACTIONS, name) ? ADMIN_ACTIONS[name] : undefined;
  if (!action) return answer(request, name, { status: 404, body: { error: `no admin action "${name}"; known: ${Object.keys(ADMIN_ACTIONS).join(", ")}` } });
  if (request.method !== action.method) {
    return answer(request, name, { status: 405, body: { error: `${name} takes ${action.method}` } }, { allow: action.method });
  }
  let result: AdminResult;
  try {
    result = await action.run(context, url);
  } catch (error) {
    result = { status: 500, body: { error: `${name} failed: ${String(error)}` } };
  }
  return answer(request, name, result);
}

/**
 * Both sides are hashed first so that the comparison runs over 32 bytes whatever the lengths,
 * and the loop does not stop at the first difference: its time says nothing about the token.
 */
async function bearerMatches(header: string | null, token: string): Promise<boolean> {
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? "");
  const digest = async (text: string) => new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  const [given, expected] = await Promise.all([digest(match?.[1] ?? ""), digest(token)]);
  let difference = match ? 0 : 1;
  for (let i = 0; i < expected.length; i++) difference |= (given[i] as number) ^ (expected[i] as number);
  return difference === 0;
}

function answer(request: Request, action: string, result: AdminResult, headers: Record<string, string> = {}): Response {
  const level = result.status < 400 ? "info" : "warn";
  logEvent(level, "admin", { action, method: request.method, status: result.status, ...result.body });
  return new Response(`${JSON.stringify(result.body, null, 2)}\n`, {
    status: result.status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...headers },
  });
}

/** Reads a JSON object body, or says what was wrong with it. */
export async function jsonBody(request: Request): Promise<Record<string, unknown> | string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await request.text());
  } catch {
    return "the body must be a JSON object, e.g. {\"repo\": \"/myrepo\"}";
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return "the body must be a JSON object";
  return parsed as Record<string, unknown>;
}

/**
 * POST {"repo": "/path", "command"?: "filesdata"}: deletes that repository's cached objects (or
 * one command's) from R2, up to PURGE_MAX_OBJECTS per request; `more: true`
 * says to call again. Entries already copied into a PoP cache are deleted in this PoP only:
 * other PoPs may serve a purged object's (immutable) bytes until they evict it.
 */
async function purge(context: V2Context, url: URL): Promise<AdminResult> {
  const { config, request } = context;
  if (!config.objects) return { status: 503, body: { error: "no OBJECTS bucket is bound: nothing to purge" } };
  const body = await jsonBody(request);
  if (typeof body === "string") return { status: 400, body: { error: body } };
  if (typeof body.repo !== "string" || !isCanonicalRepo(body.repo)) {
    return { status: 400, body: { error: "\"repo\" must be one repository's path as requests name it, e.g. \"/\" or \"/team/project\" (no trailing slash, no segment starting with \".\")" } };
  }
  if (body.command !== undefined && (typeof body.command !== "string" || !Object.hasOwn(CACHEABLE_COMMANDS, body.command))) {
    return { status: 400, body: { error: `"command" must be one of the cached commands: ${Object.keys(CACHEABLE_COMMANDS).join(", ")}` } };
  }
  // A repository's namespace is exactly `<repo>/<command>/<key>` for each cached command: one
  // level under each command's prefix, never another repository's `<repo>/<sub>/…` objects.
  const commands = body.command ? [body.command] : Object.keys(CACHEABLE_COMMANDS);
  const cache = typeof caches === "undefined" ? undefined : caches.default;
  const dropFromPop = (names: string[]) => Promise.all(names.map((name) => cache?.delete(contentRouteKey(url, name)).catch(() => false)));
  const repoPrefix = repositoryPrefix(body.repo);
  const prefixes = commands.map((command) => `${repoPrefix}${command}/`);
  const { deleted, more } = await deleteByPrefixes(config.objects, prefixes, PURGE_MAX_OBJECTS, dropFromPop);
  const prefix = repoPrefix + (body.command ? `${body.command}/` : "");
  return { status: 200, body: { repo: body.repo, ...(body.command ? { command: body.command } : {}), prefix, deleted, more } };
}

/** The PoP cache key of an object, as the content route writes it (src/edge/objects.ts). */
function contentRouteKey(url: URL, name: string): Request {
  return new Request(contentRouteUrls(url.origin)(name));
}

/** Pages of R2 listing (1000 objects each) one stats request reads at most. */
export const STATS_MAX_LIST_PAGES = 100;

/**
 * GET [?repo=/path]: per repository, objects and bytes stored (from R2's listing) and the cache
 * counters (from the STATS Durable Object), plus this isolate's filesdata retry counts.
 */
async function stats({ config }: V2Context, url: URL): Promise<AdminResult> {
  const repo = url.searchParams.get("repo") ?? undefined;
  const stored = config.objects ? await storedUsage(config.objects, repo ? repositoryPrefix(repo) : "", STATS_MAX_LIST_PAGES) : undefined;
  const counters = config.stats ? await statsStub(config.stats).read() : undefined;
  const names = new Set([...Object.keys(stored?.repos ?? {}), ...Object.keys(counters ?? {})].filter((name) => !repo || name === normalisedRepo(repo)));
  const repositories = Object.fromEntries(
    [...names].sort().map((name) => [name, { stored: stored?.repos[name] ?? { objects: 0, bytes: 0 }, ...(counters ? { counters: counters[name] ?? emptyCounters() } : {}) }]),
  );
  return {
    status: 200,
    body: {
      repositories,
      listing: stored ? { objects: stored.listed, complete: stored.complete } : "no OBJECTS bucket is bound",
      ...(counters ? {} : { counters: "not kept: bind the STATS Durable Object to count hits, redirects, misses and bypasses" }),
      isolate: { filesdataRetries: retryStats.retries, filesdataDirect: retryStats.direct },
      bundles: await bundleStats(config, repo === undefined ? undefined : normalisedRepo(repo)),
    },
  };
}

/** `/a/b` as requests name repositories (no trailing slash; the root is `/`). */
function normalisedRepo(repo: string): string {
  return `/${repo.replace(/^\/+|\/+$/g, "")}`;
}
