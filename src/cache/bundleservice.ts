/**
 * Clone bundles as a service for the edge: which bundles of a repository can be listed, asking
 * a repository's generator to check after a push or on the cron, making bundles now (admin), and
 * what admin/stats shows of them. Making and storing them is bundlegen.ts; the per-repository
 * generator is bundler.ts.
 */
import { servingCache, type Config, type ServingCache } from "../config.ts";
import type { OriginFetch } from "../origin/client.ts";
import { isCanonicalRepo } from "../protocol/target.ts";
import { logEvent as log } from "../log.ts";
import { bundlerStub, type BundlerStatus, type Trigger } from "./bundler.ts";
import { generateBundles, offReason, refreshBundles, type GenerationOutcome } from "./bundlegen.ts";
import { expireRetiredBundles, readBundleRecord, BUNDLES_SEGMENT, RECORD_FILE, type BundleRecord, type StoredBundle } from "./bundles.ts";
import { objectUrl } from "./urls.ts";

/** A bundle ready for a manifest: its URL and its BUNDLESPEC. */
export interface ListedBundle {
  url: string;
  bundlespec: string;
  format: string;
}

/** The current bundles of `repo`, best first, optionally only those whose object is really there; none on any doubt. */
export async function servableBundles(config: Config, repo: string, checkObjects: boolean): Promise<{ record: BundleRecord; bundles: StoredBundle[] } | undefined> {
  const cache = servingCache(config);
  if (!cache) return undefined;
  try {
    const record = await readBundleRecord(cache.bucket, repo, config.originUrl.href);
    if (!record) return undefined;
    if (!checkObjects) return { record, bundles: record.bundles };
    const present = await Promise.all(record.bundles.map((b) => cache.bucket.head(b.name)));
    return { record, bundles: record.bundles.filter((_, i) => present[i] !== null) };
  } catch (error) {
    log("warn", "bundle-record-read-failed", { repo, error: String(error) });
    return undefined;
  }
}

/** The URLs (signed unless ACCESS=public) a manifest lists for `bundles`, on the edge the client talks to. */
export function bundleUrls(config: Config, cache: ServingCache, edgeOrigin: string, bundles: StoredBundle[]): Promise<ListedBundle[]> {
  return Promise.all(bundles.map(async (b) => ({ url: await objectUrl(config, cache, edgeOrigin, b.name), bundlespec: b.bundlespec, format: b.format })));
}

/**
 * After a push that landed: when `repo` has bundles (or is in BUNDLE_REPOS), its generator is
 * asked to check. A push a hook refused changes no heads: the check then costs one `heads` call.
 */
export async function scheduleAfterPush(config: Config, repo: string): Promise<void> {
  const cache = servingCache(config);
  if (!config.bundler || !cache) return;
  if (!config.bundleRepos.includes(repo) && !(await readBundleRecord(cache.bucket, repo, config.originUrl.href))) return;
  const status = await bundlerStub(config.bundler, repo).schedule(repo, "push" satisfies Trigger);
  log("info", "bundle-scheduled", { repo, trigger: "push", running: status.running !== undefined });
}

/**
 * The cron: each repository of BUNDLE_REPOS is handed to its generator (whose alarm has 15
 * minutes of wall time); without the BUNDLER binding, checked and made right here, within the
 * cron invocation's limits.
 */
export async function refreshConfiguredBundles(config: Config, originFetch: OriginFetch): Promise<void> {
  const cache = servingCache(config);
  if (!cache) return;
  for (const repo of config.bundleRepos) {
    if (config.bundler) {
      await bundlerStub(config.bundler, repo).schedule(repo, "cron");
      continue;
    }
    await expireRetiredBundles(cache.bucket, repo, config.originUrl.href, config.bundleGraceSeconds * 1000).catch(() => undefined);
    const { record: _record, ...result } = await refreshBundles(config, originFetch, repo);
    log(result.action === "failed" ? "warn" : "info", "bundle-cron", result);
  }
}

/**
 * Makes new bundles of `repo` now: by its generator when BUNDLER is bound, else here — once at a
 * time per repository in this isolate (`inProgress`).
 */
export async function generateNow(config: Config, originFetch: OriginFetch, repo: string, inProgress: Set<string>): Promise<GenerationOutcome> {
  if (config.bundler && servingCache(config)) return bundlerStub(config.bundler, repo).generateNow(repo);
  if (inProgress.has(repo)) return { ok: false, status: 409, error: `a bundle of ${repo} is already being made in this isolate` };
  inProgress.add(repo);
  try {
    return await generateBundles(config, originFetch, repo);
  } finally {
    inProgress.delete(repo);
  }
}

/** Most records `admin/stats` lists (one R2 listing page). */
const STATS_MAX_RECORDS = 1000;

/**
 * For `admin/stats`: per repository with bundles (or in BUNDLE_REPOS), its current bundles, the
 * formats it lacks and why, and its generator's progress, pending work and last result.
 */
export async function bundleStats(config: Config, onlyRepo?: string): Promise<Record<string, unknown>> {
  const cache = servingCache(config);
  if (!cache) return { off: offReason(config) };
  const repos = new Set(onlyRepo === undefined ? config.bundleRepos : isCanonicalRepo(onlyRepo) ? [onlyRepo] : []);
  if (!onlyRepo) {
    const listing = await cache.bucket.list({ prefix: `${BUNDLES_SEGMENT}/`, limit: STATS_MAX_RECORDS });
    for (const object of listing.objects) {
      if (!object.key.endsWith(`/${RECORD_FILE}`)) continue;
      const record = await readBundleRecord(cache.bucket, repoFromRecordKey(object.key), config.originUrl.href).catch(() => undefined);
      if (record) repos.add(record.repo);
    }
  }
  const out: Record<string, unknown> = {};
  for (const repo of [...repos].sort()) {
    const record = await readBundleRecord(cache.bucket, repo, config.originUrl.href).catch(() => undefined);
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
