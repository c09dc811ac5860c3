/**
 * Clone bundles for wire protocol v1 clients (Mercurial 6.x/7.x; `hg help -e clonebundles`), the
 * HTTP side: hgedge lists the bundles it made (src/cache/bundlegen.ts) in the manifest the v1
 * `clonebundles` / `clonebundles_manifest` commands answer, so that a clone fetches the bulk from
 * R2 and asks the origin only for what is newer; and it asks for new bundles when pushes land.
 *
 * - manifest: the client's own request goes to the origin, which checks its credentials; only
 *   to a 200 are our entries prepended (signed URLs unless ACCESS=public), best first.
 * - capabilities: `clonebundles` and `clonebundles_manifest` are added to a v1 capabilities
 *   answer when a bundle exists.
 * - pushes: a v1 `unbundle` the origin answered with success asks the repository's generator
 *   (src/cache/bundler.ts) to check, and regenerate once BUNDLE_MIN_NEW_CHANGESETS landed.
 * - cron: each repository of BUNDLE_REPOS is checked the same way (pushes that bypass the edge).
 */
import { loadConfig, type Config, type Env } from "../config.ts";
import { bundleRecordName, expireRetiredBundles, readBundleRecord, BUNDLES_SEGMENT, RECORD_FILE, type BundleRecord, type StoredBundle } from "../cache/bundles.ts";
import { bundlesServed, generateBundles, refreshBundles, type GenerationOutcome } from "../cache/bundlegen.ts";
import { bundlerStub, type BundlerStatus, type Trigger } from "../cache/bundler.ts";
import { CLONEBUNDLES_CAPABILITIES, MANIFEST_COMMANDS, ORIGIN_MANIFEST_COMMAND, prependEntries, requiresSni, type ManifestEntry } from "../protocol/clonebundles.ts";
import { withCapabilities, HG_ERROR_MEDIA_TYPE, HG_MEDIA_TYPE_01 } from "../protocol/v1.ts";
import { jsonBody, type AdminResult } from "./admin.ts";
import { readBounded, withBody } from "./bodies.ts";
import { objectUrl } from "./cached.ts";
import { forwardToOrigin, type OriginFetch } from "./passthrough.ts";
import { handleHandshake, type V2Context } from "./v2.ts";
import type { HgRequest } from "./wireproto.ts";
import { canonicalTarget, isCanonicalRepo, type CanonicalTarget } from "../protocol/target.ts";
import { logEvent as log } from "../log.ts";

/** Capabilities answers and manifests are small; a larger one passes through untouched. */
const MAX_SMALL_ANSWER_BYTES = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Routing

export type BundleRoute =
  | { kind: "v1-capabilities"; repo: string; handshake: boolean }
  | { kind: "v1-clonebundles"; repo: string; command: string };

/**
 * The v1 requests clone bundles change among those otherwise passed through: plain capabilities
 * and the manifest commands. (The v2 handshake is routed here by the app as a capabilities
 * request with `handshake: true`.)
 */
export function bundleRouteOf(method: string, target: CanonicalTarget, hg: HgRequest): BundleRoute | undefined {
  if (hg.kind !== "other" || target.protocol !== "v1" || target.repo === undefined || target.command === undefined) return undefined;
  const { repo, command } = target;
  if (command === "capabilities" && method === "GET") return { kind: "v1-capabilities", repo, handshake: false };
  if ((MANIFEST_COMMANDS as readonly string[]).includes(command)) return { kind: "v1-clonebundles", repo, command };
  return undefined;
}

export function handleBundleRoute(context: V2Context, route: BundleRoute): Promise<Response> {
  return route.kind === "v1-capabilities" ? answerCapabilities(context, route) : answerManifest(context, route.repo);
}

/** The current bundles of `repo`, best first, optionally only those whose object is really there; none on any doubt. */
async function servableBundles(config: Config, repo: string, checkObjects: boolean): Promise<{ record: BundleRecord; bundles: StoredBundle[] } | undefined> {
  if (!bundlesServed(config)) return undefined;
  try {
    const record = await readBundleRecord(config.objects, repo, config.originUrl.href);
    if (!record) return undefined;
    if (!checkObjects) return { record, bundles: record.bundles };
    const present = await Promise.all(record.bundles.map((b) => config.objects.head(b.name)));
    return { record, bundles: record.bundles.filter((_, i) => present[i] !== null) };
  } catch (error) {
    log("warn", "bundle-record-read-failed", { repo, error: String(error) });
    return undefined;
  }
}

/** A v1 capabilities answer gains `clonebundles` and `clonebundles_manifest` when the repository has a bundle. */
async function answerCapabilities(context: V2Context, route: { repo: string; handshake: boolean }): Promise<Response> {
  const { request, config, originFetch } = context;
  const [response, servable] = await Promise.all([
    route.handshake ? handleHandshake(context) : forwardToOrigin(request, config, originFetch),
    servableBundles(config, route.repo, false),
  ]);
  // A v2 handshake answer (CBOR) is left alone: v2 clients do not use clone bundles.
  if (!servable || servable.bundles.length === 0 || response.status !== 200 || mediaType(response) !== HG_MEDIA_TYPE_01) return response;
  const body = await readBounded(response.body, MAX_SMALL_ANSWER_BYTES);
  if (body.kind === "stream") return withBody(response, body.stream);
  const text = new TextDecoder().decode(body.bytes);
  return withBody(response, new TextEncoder().encode(withCapabilities(text, CLONEBUNDLES_CAPABILITIES)));
}

/**
 * `clonebundles` / `clonebundles_manifest`: the origin answers the client (and so decides whether
 * this client may pull) — asked `clonebundles`, which every origin knows — and our entries go
 * ahead of whatever it lists. Any other answer — 401, 403, an error — reaches the client untouched.
 */
async function answerManifest(context: V2Context, repo: string): Promise<Response> {
  const { request, config, originFetch } = context;
  const url = new URL(request.url);
  url.searchParams.set("cmd", ORIGIN_MANIFEST_COMMAND);
  const [response, servable] = await Promise.all([forwardToOrigin(new Request(url, request), config, originFetch), servableBundles(config, repo, true)]);
  if (!servable || servable.bundles.length === 0 || response.status !== 200 || mediaType(response) !== HG_MEDIA_TYPE_01) return response;
  const body = await readBounded(response.body, MAX_SMALL_ANSWER_BYTES);
  if (body.kind === "stream") return withBody(response, body.stream);
  const entries: ManifestEntry[] = await Promise.all(
    servable.bundles.map(async (bundle) => {
      const location = await objectUrl(config, url, bundle.name);
      return { url: location, attributes: { BUNDLESPEC: bundle.bundlespec, ...(requiresSni(location) ? { REQUIRESNI: "true" } : {}) } };
    }),
  );
  log("info", "clonebundles-manifest", { repo, bundles: servable.bundles.map((b) => b.format), changesets: servable.record.changesets });
  return withBody(response, prependEntries(body.bytes, entries));
}

function mediaType(response: Response): string {
  return (response.headers.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

// ---------------------------------------------------------------------------------------------
// Pushes and the cron trigger

/**
 * Passes the origin's answer to a request on unchanged; when it is the success of a v1 push
 * (`unbundle` answered 200 with a Mercurial body: hgweb answers only once the push was applied)
 * to a repository with bundles, it asks the repository's generator to check, in the background.
 * A push a hook refused changes no heads: the check then costs one `heads` call.
 */
export function noticePush(context: V2Context, response: Response): Response {
  const { request, config, waitUntil } = context;
  if (!config.bundler || !bundlesServed(config) || request.method !== "POST" || response.status !== 200) return response;
  const url = new URL(request.url);
  const verdict = canonicalTarget(url.pathname, url.search);
  if (!verdict.ok || verdict.target.command !== "unbundle" || mediaType(response) === HG_ERROR_MEDIA_TYPE) return response;
  const repo = verdict.target.repo ?? "/";
  const scheduled = scheduleIfBundled(config, repo, "push").catch((error: unknown) => log("warn", "bundle-schedule-failed", { repo, error: String(error) }));
  waitUntil?.(scheduled);
  return response;
}

async function scheduleIfBundled(config: Config & { objects: R2Bucket }, repo: string, trigger: Trigger): Promise<void> {
  if (!config.bundler) return;
  if (!config.bundleRepos.includes(repo) && !(await readBundleRecord(config.objects, repo, config.originUrl.href))) return;
  const status = await bundlerStub(config.bundler, repo).schedule(repo, trigger);
  log("info", "bundle-scheduled", { repo, trigger, running: status.running !== undefined });
}

/**
 * The Worker's `scheduled` handler: each repository of BUNDLE_REPOS is handed to its generator
 * (whose alarm has 15 minutes of wall time); without the BUNDLER binding, checked and made
 * right here, within the cron invocation's limits.
 */
export function createScheduledHandler(options: { originFetch?: OriginFetch } = {}) {
  const fetchOrigin: OriginFetch = options.originFetch ?? ((url, init) => fetch(url, init));
  return async (_controller: ScheduledController, env: Env): Promise<void> => {
    const config = loadConfig(env);
    if (!bundlesServed(config)) return;
    for (const repo of config.bundleRepos) {
      if (config.bundler) {
        await bundlerStub(config.bundler, repo).schedule(repo, "cron");
        continue;
      }
      await expireRetiredBundles(config.objects, repo, config.originUrl.href, config.bundleGraceSeconds * 1000).catch(() => undefined);
      const { record: _record, ...result } = await refreshBundles(config, fetchOrigin, repo);
      log(result.action === "failed" ? "warn" : "info", "bundle-cron", result);
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Admin API

/** Repositories whose bundles this isolate is making (without BUNDLER): a second request for one is refused. */
const generatingHere = new Set<string>();

async function generateFromAdmin(context: V2Context, repo: string): Promise<GenerationOutcome> {
  const { config } = context;
  if (config.bundler && bundlesServed(config)) return bundlerStub(config.bundler, repo).generateNow(repo);
  if (generatingHere.has(repo)) return { ok: false, status: 409, error: `a bundle of ${repo} is already being made in this isolate` };
  generatingHere.add(repo);
  try {
    return await generateBundles(config, context.originFetch, repo);
  } finally {
    generatingHere.delete(repo);
  }
}

/**
 * POST {"repo": "/path"}: makes new bundles of that repository now and answers with their record
 * (200), or with why not — the previous bundles then stay current (`kept`).
 */
export async function bundlesAdminAction(context: V2Context): Promise<AdminResult> {
  const body = await jsonBody(context.request);
  const repo = typeof body === "object" ? body.repo : undefined;
  if (typeof repo !== "string" || !repo.startsWith("/")) {
    return { status: 400, body: { error: 'the body must be a JSON object with the repository\'s path, e.g. {"repo": "/"} or {"repo": "/team/project"}' } };
  }
  const normalized = repo.replace(/\/+$/, "") || "/";
  const outcome = await generateFromAdmin(context, normalized);
  if (!outcome.ok) return { status: outcome.status, body: { repo: normalized, error: outcome.error, ...(outcome.kept ? { kept: outcome.kept } : {}) } };
  const { record } = outcome;
  return { status: 200, body: { repo: normalized, bundles: record.bundles, ...(record.skipped ? { skipped: record.skipped } : {}), record: bundleRecordName(normalized), changesets: record.changesets, heads: record.heads, removed: outcome.removed, retired: outcome.retired } };
}

/** Most records `admin/stats` lists (one R2 listing page). */
const STATS_MAX_RECORDS = 1000;

/**
 * For `admin/stats`: per repository with bundles (or in BUNDLE_REPOS), its current bundles, the
 * formats it lacks and why, and its generator's progress, pending work and last result.
 */
export async function bundleStats(config: Config, onlyRepo?: string): Promise<Record<string, unknown>> {
  if (!bundlesServed(config)) return { off: config.cacheRefusal ?? "no OBJECTS bucket is bound" };
  const repos = new Set(onlyRepo === undefined ? config.bundleRepos : isCanonicalRepo(onlyRepo) ? [onlyRepo] : []);
  if (!onlyRepo) {
    const listing = await config.objects.list({ prefix: `${BUNDLES_SEGMENT}/`, limit: STATS_MAX_RECORDS });
    for (const object of listing.objects) {
      if (!object.key.endsWith(`/${RECORD_FILE}`)) continue;
      const record = await readBundleRecord(config.objects, repoFromRecordKey(object.key), config.originUrl.href).catch(() => undefined);
      if (record) repos.add(record.repo);
    }
  }
  const out: Record<string, unknown> = {};
  for (const repo of [...repos].sort()) {
    const record = await readBundleRecord(config.objects, repo, config.originUrl.href).catch(() => undefined);
    const generator: BundlerStatus | string = config.bundler ? await bundlerStub(config.bundler, repo).status() : "no BUNDLER binding: bundles are made by the admin API and the cron trigger";
    out[repo] = {
      current: record ? { createdAt: record.createdAt, changesets: record.changesets, heads: record.heads.length, bundles: record.bundles.map(({ format, size, bundlespec }) => ({ format, size, bundlespec })), retired: record.retired } : null,
      ...(record?.skipped ? { skipped: record.skipped } : {}),
      generator,
    };
  }
  return out;
}

/** `.bundles/team/project/current.json` → `/team/project` (`.root` → `/`). */
function repoFromRecordKey(key: string): string {
  const path = key.slice(`${BUNDLES_SEGMENT}/`.length, -`/${RECORD_FILE}`.length);
  return path === ".root" ? "/" : `/${path}`;
}
